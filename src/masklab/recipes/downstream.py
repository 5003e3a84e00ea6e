"""``embed``, ``probe`` and ``finetune`` for any run: dispatched on the model kind its ``config.json`` records
to the modality's recipe (``embed_mae``, ``probe_mlm``, ...). Only that modality's module is imported.

| task | mae | mlm | clm | table | series |
|---|---|---|---|---|---|
| embed | yes | yes | yes | yes | yes |
| probe | yes | yes | labelled text | a label column | yes |
| finetune | yes | yes | no | no | yes |
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from masklab.eval.probe import ProbeResult
from masklab.recipes.embedding import Embedding
from masklab.train.run import Run

# task -> kind -> (module, function)
_TASKS: dict[str, dict[str, tuple[str, str]]] = {
    "embed": {
        "mae": ("mae_tasks", "embed_mae"),
        "mlm": ("mlm_tasks", "embed_mlm"),
        "clm": ("downstream_clm", "embed_clm"),
        "table": ("downstream_table", "embed_table"),
        "series": ("series_tasks", "embed_series"),
    },
    "probe": {
        "mae": ("mae_tasks", "probe_mae"),
        "mlm": ("mlm_tasks", "probe_mlm"),
        "clm": ("downstream_clm", "probe_clm"),
        "table": ("downstream_table", "probe_table"),
        "series": ("series_tasks", "probe_series"),
    },
    "finetune": {
        "mae": ("mae_tasks", "finetune_mae"),
        "mlm": ("mlm_tasks", "finetune_mlm"),
        "series": ("series_tasks", "finetune_series"),
    },
}


def _recipe(task: str, run: str | Path):
    kind = Run(run).kind()
    entry = _TASKS[task].get(kind)
    if entry is None:
        supported = ", ".join(sorted(_TASKS[task]))
        others = [t for t, kinds in _TASKS.items() if kind in kinds]
        hint = f"; for {kind!r} runs use {' / '.join(others)}" if others else ""
        raise ValueError(f"'masklab {task}' is available for runs of kind {supported}, not {kind!r}{hint}")
    module, name = entry
    return getattr(importlib.import_module(f"masklab.recipes.{module}"), name)


def embed(run: str | Path, **kwargs: Any) -> Embedding:
    """Features ``(N, D)`` float32 of every example of ``data`` (default: the run's), no random masking, with
    each row's source and label (:class:`~masklab.recipes.embedding.Embedding`)."""
    return _recipe("embed", run)(run, **kwargs)


def probe(run: str | Path, **kwargs: Any) -> list[ProbeResult]:
    """Linear-probe and k-NN accuracy of the frozen features, with baselines (a list of ``ProbeResult``)."""
    return _recipe("probe", run)(run, **kwargs)


def finetune(run: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Fine-tune the run's encoder on a labelled task; returns the ``metrics.json`` record of ``RUN/finetune``."""
    return _recipe("finetune", run)(run, **kwargs)
