"""One output layout for every fine-tune (MAE, MLM, series): ``RUN/finetune/`` holds, next to the training files
``fit`` writes (``config.json``, ``checkpoint.safetensors``, ``metrics.jsonl``, ``loss.png``):

- ``model.safetensors``: the fine-tuned weights only (sha256-checked; what ``predict`` reads),
- ``metrics.json``: test accuracy, sizes, class names (``labels``) and the confusion matrix,
- ``confusion.csv``: rows = true class, columns = predicted class, headed by the class names,
- ``confusion.png``: the same matrix as a picture (needs matplotlib; a note otherwise).

Runs fine-tuned before this layout (``RUN/finetune-classify`` of an MLM run, ``finetune.json``) stay readable.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from masklab.train.run import Run

FINETUNE_DIR = "finetune"
LEGACY_DIRS = ("finetune-classify",)  # MLM fine-tunes before 0.x wrote here
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
LEGACY_METRICS = "finetune.json"
CONFUSION_CSV = "confusion.csv"
CONFUSION_PNG = "confusion.png"


def default_out(run: str | Path, out: str | Path | None) -> Path:
    """Where a fine-tune of ``run`` writes: ``out``, else ``RUN/finetune``."""
    return Path(out) if out else Path(run) / FINETUNE_DIR


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's tensors (no optimizer state) as ``model.safetensors`` with masklab's integrity hash."""
    from masklab.core.io import save_checkpoint

    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    return save_checkpoint(path, tensors, {"format": "masklab.model/1", "kind": str(getattr(model, "kind", ""))})


def confusion_csv(matrix: torch.Tensor, names: Sequence[str]) -> str:
    """CSV text: header ``true \\ predicted`` then the class names; one row per true class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *names])
    for name, row in zip(names, matrix.tolist(), strict=True):
        writer.writerow([name, *row])
    return buffer.getvalue()


def write_finetune_outputs(
    target: Run,
    model: nn.Module,
    *,
    y_true: torch.Tensor | Sequence[int],
    y_pred: torch.Tensor | Sequence[int],
    names: Sequence[str],
    title: str,
    extra: Mapping[str, Any] = {},
) -> dict[str, Any]:
    """Write the layout above into ``target`` for test labels ``y_true`` and predictions ``y_pred`` (class
    indices into ``names``); prints the confusion table and returns the ``metrics.json`` record."""
    from masklab.core.io import atomic_write_bytes
    from masklab.viz.confusion import confusion_matrix, format_confusion, plot_confusion

    y_true_t, y_pred_t = torch.as_tensor(y_true).long().flatten(), torch.as_tensor(y_pred).long().flatten()
    names = [str(n) for n in names]
    matrix = confusion_matrix(y_true_t, y_pred_t, len(names))
    accuracy = float((y_true_t == y_pred_t).float().mean()) if len(y_true_t) else float("nan")
    record = {"task": "classify", "accuracy": accuracy, "test_size": len(y_true_t), **extra, "labels": names,
              "confusion": matrix.tolist()}  # fmt: skip
    save_weights(model, target.path / MODEL_FILE)
    atomic_write_bytes(target.path / CONFUSION_CSV, confusion_csv(matrix, names).encode("utf-8"))
    try:
        plot_confusion(matrix, names, target.path / CONFUSION_PNG, title=f"{title}: accuracy {accuracy:.3f}")
    except ImportError as err:
        print(f"masklab: note: no {CONFUSION_PNG} ({err})", file=sys.stderr)
    target.write_sidecar(METRICS_FILE, record)
    print(format_confusion(matrix, names))
    print(f"masklab: test accuracy {accuracy:.4f} on {len(y_true_t)} held-out examples; wrote {target.path}")
    return record


def class_names(directory: str | Path, count: int) -> list[str]:
    """The class names a fine-tune recorded (``metrics.json``, or a legacy ``finetune.json``), else ``0..K-1``."""
    run = Run(directory)
    for name in (METRICS_FILE, LEGACY_METRICS):
        labels = run.read_sidecar(name).get("labels")
        if isinstance(labels, list) and len(labels) == count:
            return [str(v) for v in labels]
    return [str(i) for i in range(count)]


def finetune_directory(path: str | Path) -> Path:
    """The fine-tune output behind ``path``: ``path`` itself when it holds a classifier (``model.safetensors``
    or a legacy checkpoint of one), else ``path/finetune`` or a legacy ``path/finetune-classify``."""
    path = Path(path)
    candidates = [path, path / FINETUNE_DIR, *(path / d for d in LEGACY_DIRS)]
    for candidate in candidates:
        if (candidate / METRICS_FILE).is_file() or (candidate / LEGACY_METRICS).is_file():
            return candidate
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a masklab run or fine-tune directory (no config.json)")
    return path


def load_finetuned(directory: str | Path, device: str = "cpu") -> nn.Module:
    """The fine-tuned model of ``directory`` in eval mode: ``model.safetensors`` when present, else the
    training checkpoint (fine-tunes written before ``model.safetensors`` existed)."""
    from masklab.core.device import resolve_device
    from masklab.core.io import load_checkpoint
    from masklab.models.registry import build_model
    from masklab.train.checkpoint import CONFIG_NAME, CheckpointError, read_run_config, weights_mismatch

    run = Run(directory)
    weights = run.path / MODEL_FILE
    if not weights.is_file():
        return run.load_model(device)
    config = read_run_config(run.path)
    model = build_model(config)
    tensors, _ = load_checkpoint(weights)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        detail = weights_mismatch(model.state_dict(), tensors) or str(err)
        raise CheckpointError(
            f"{weights} does not hold the weights of the {config['kind']!r} model {CONFIG_NAME} describes: {detail}"
        ) from None
    return model.to(str(resolve_device(device))).eval()
