"""Typed task functions, callable from a notebook (no argparse); the ``masklab`` CLI only parses and calls them.

    from masklab.recipes import TrainOptions, pretrain_mae, reconstruct
    result = pretrain_mae("runs/mae", data="builtin:digits", preset="mae-tiny", train=TrainOptions(steps=100))
    reconstruct("runs/mae", "grid.png", count=8)

Each name is imported on first use, so importing one modality's recipe loads no other modality. A recipe
taken from here leaves torch's global random state as it found it: recipes seed their own draws (the same
arguments give the same result), and a notebook's own random numbers afterwards do not depend on them.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any

_EXPORTS = {
    "TrainOptions": "common",
    "pretrain_mae": "mae",
    "embed_mae": "mae_tasks",
    "probe_mae": "mae_tasks",
    "finetune_mae": "mae_tasks",
    "reconstruct": "images",
    "inpaint": "images",
    "pretrain_mlm": "mlm",
    "embed_mlm": "mlm_tasks",
    "probe_mlm": "mlm_tasks",
    "finetune_mlm": "mlm_tasks",
    "fill": "mlm_tasks",
    "pretrain_clm": "clm",
    "generate": "clm",
    "perplexity": "clm",
    "pretrain_table": "table",
    "impute": "table",
    "score": "table",
    "embed": "downstream",
    "probe": "downstream",
    "finetune": "downstream",
    "embed_table": "downstream_table",
    "probe_table": "downstream_table",
    "embed_clm": "downstream_clm",
    "probe_clm": "downstream_clm",
    "Embedding": "embedding",
    "write_embedding": "embedding",
    "read_embedding": "embedding",
    "predict": "prediction",
    "Predictions": "prediction",
    "export_hf": "export",
    "attention": "attention_maps",
    "masks": "mask_examples",
    "describe_run": "run_info",
    "train_segmenter": "segment",
    "load_segmenter": "segment",
    "predict_mask": "segment",
    "remove_background": "edit",
    "blur_background": "edit",
    "replace_background": "edit",
    "remove_subject": "edit",
    "pretrain_series": "series_tasks",
    "forecast_series": "series_tasks",
    "impute_series": "series_tasks",
    "embed_series": "series_tasks",
    "probe_series": "series_tasks",
    "finetune_series": "series_tasks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'masklab.recipes' has no attribute {name!r}")
    module = importlib.import_module(f"masklab.recipes.{_EXPORTS[name]}")
    value = getattr(module, name)
    if inspect.isfunction(value):
        value = _keeps_torch_rng(module, name)
    globals()[name] = value  # found once
    return value


def _keeps_torch_rng(module: Any, name: str) -> Any:
    """``module.name`` (looked up at each call) run inside ``torch.random.fork_rng``: training seeds torch's
    global generator (the initial weights, each micro-batch's dropout), which would otherwise reset the
    caller's random stream."""

    @functools.wraps(getattr(module, name))
    def keeping(*args: Any, **kwargs: Any) -> Any:
        import torch

        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if cuda else []):
            return getattr(module, name)(*args, **kwargs)

    return keeping
