"""Which model classes a saved run may name: a whitelist from ``kind`` to (module, class).

A ``config.json`` is data from disk; importing a module path read from it would let a downloaded run
execute arbitrary code. So the kind is looked up here, and only whitelisted modules are ever imported.
Model classes register with one line each below and provide ``from_config(model_config) -> nn.Module``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# kind -> (module, class name). Model families add one line each, e.g. "mae": ("masklab.models.mae", "MAE").
MODEL_KINDS: dict[str, tuple[str, str]] = {
    "clm": ("masklab.models.clm.model", "GPT"),
    "table": ("masklab.models.table.model", "TableMAE"),
    "mlm": ("masklab.models.mlm.model", "BertForMLM"),
    "mae": ("masklab.models.mae.model", "MAE"),
    "series": ("masklab.models.series.model", "PatchTST"),
    "series-classifier": ("masklab.models.series.classifier", "SeriesClassifier"),
    "segment": ("masklab.models.segment.model", "Segmenter"),
}


def register_kind(kind: str, module: str, cls: str) -> None:
    """Whitelist ``module.cls`` under ``kind`` (idempotent; a different target for a taken kind is an error)."""
    if not all(isinstance(v, str) and v for v in (kind, module, cls)):
        raise ValueError(f"kind, module and cls must be non-empty strings, got {kind!r}, {module!r}, {cls!r}")
    existing = MODEL_KINDS.get(kind)
    if existing is not None and existing != (module, cls):
        raise ValueError(f"model kind {kind!r} is already registered as {existing[0]}.{existing[1]}")
    MODEL_KINDS[kind] = (module, cls)


def build_model(config: dict) -> nn.Module:
    """Build an untrained model from a run config (``{"kind": ..., "model": {...}}``, as in config.json)."""
    if not isinstance(config, dict) or "kind" not in config or "model" not in config:
        raise ValueError("a model config needs 'kind' and 'model' entries (the layout of a run's config.json)")
    kind = config["kind"]
    if kind not in MODEL_KINDS:
        known = ", ".join(sorted(MODEL_KINDS)) or "none registered"
        raise ValueError(f"unknown model kind {kind!r}; known kinds: {known}")
    module_name, cls_name = MODEL_KINDS[kind]
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.from_config(config["model"])
