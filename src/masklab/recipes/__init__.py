"""Typed task functions, callable from a notebook (no argparse); the ``masklab`` CLI only parses and calls them.

    from masklab.recipes import TrainOptions, pretrain_mae, reconstruct
    result = pretrain_mae("runs/mae", data="builtin:digits", preset="mae-tiny", train=TrainOptions(steps=100))
    reconstruct("runs/mae", "grid.png", count=8)

Each name is imported on first use, so importing one modality's recipe loads no other modality.
"""

from __future__ import annotations

import importlib
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
    "predict": "predict",
    "Predictions": "predict",
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
    return getattr(importlib.import_module(f"masklab.recipes.{_EXPORTS[name]}"), name)
