"""One output layout for every fine-tune (MAE, MLM, series): ``RUN/finetune/`` holds, next to the training files
``fit`` writes (``config.json``, ``checkpoint.safetensors``, ``metrics.jsonl``, ``loss.png``):

- ``model.safetensors``: the fine-tuned weights only (sha256-checked; what ``predict`` reads),
- ``metrics.json``: test accuracy, sizes, class names (``labels``) and the confusion matrix,
- ``confusion.csv``: rows = true class, columns = predicted class, headed by the class names,
- ``confusion.png``: the same matrix as a picture (needs matplotlib; a note otherwise).

Runs fine-tuned before this layout (``RUN/finetune-classify`` of an MLM run, ``finetune.json``) stay readable.

``metrics.json`` is written last: a folder without it holds a fine-tune that is running or was stopped (Ctrl-C,
``kill``) before its ``model.safetensors`` was written. ``finetune`` does not resume, so every message about such a
folder (``finetune`` into it again, ``predict`` on it, a Ctrl-C) says the same: delete it and run the command
again to start over (:func:`restart_advice`), or give another ``--out`` (a fine-tune stopped before its first
checkpoint is started over by the same command alone; ``predict`` says to wait for one still running).
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


def is_classifier(config: Mapping[str, Any]) -> bool:
    """Whether a run's ``config.json`` describes a fine-tuned classifier (what ``finetune`` writes)."""
    kind, model = config.get("kind"), config.get("model")
    model = model if isinstance(model, Mapping) else {}
    mae, mlm = kind == "mae" and model.get("objective") == "classify", kind == "mlm" and model.get("task") == "classify"
    return mae or mlm or kind == "series-classifier"


def finished(directory: str | Path) -> bool:
    """Whether a fine-tune wrote all of ``directory`` (its ``metrics.json``, last; ``finetune.json`` for old ones)."""
    return any((Path(directory) / name).is_file() for name in (METRICS_FILE, LEGACY_METRICS))


def restart_advice(directory: str | Path, run: str | Path | None = None) -> str:
    """What starts an unfinished fine-tune in ``directory`` over: ``run`` is the run it fine-tunes (default: the
    folder holding ``directory`` when that is ``RUN/finetune``, else the run it recorded, else ``RUN``)."""
    directory = Path(directory)
    if run is None:
        try:
            recorded = Run(directory).read_sidecar("data.json").get("finetuned_from")  # MAE fine-tunes record it
        except (OSError, ValueError, AttributeError):
            recorded = None
        default = directory.name == FINETUNE_DIR and (directory.parent / "config.json").is_file()
        run = directory.parent if default else recorded or "RUN"
    out = "" if Path(run) / FINETUNE_DIR == directory else f" --out {directory}"
    return (f"finetune does not resume: delete {directory} (rm -r {directory}) and run masklab finetune {run}{out} "
            "again (the same options) to start over, or give it another --out")  # fmt: skip


def _stopped(directory: Path) -> str:
    from masklab.train.checkpoint import CHECKPOINT_NAME
    from masklab.train.interrupt import held_step

    step = held_step(directory / CHECKPOINT_NAME)
    planned = _config(Run(directory)).get("train", {}).get("steps") if step is not None else None
    at = "before its first checkpoint" if step is None else f"at step {step}" + (f" of {planned}" if planned else "")
    return f"{directory} holds a fine-tune stopped {at}, before its {MODEL_FILE} was written"


def unfinished_message(directory: str | Path) -> str:
    """Why ``directory`` (a fine-tune's folder without ``metrics.json``) holds no fine-tuned model yet, and what to
    do: wait for the process still writing it, or start a stopped one over (:func:`restart_advice`)."""
    from masklab.core.lock import LOCK_NAME, lock_holder

    directory = Path(directory)
    holder = lock_holder(directory / LOCK_NAME) if (directory / LOCK_NAME).exists() else None
    if holder is not None:
        return (f"{directory} is still being fine-tuned by process {holder.get('pid')} on {holder.get('host')} "
                "(no model yet); wait for it to finish")  # fmt: skip
    return f"{_stopped(directory)}; {restart_advice(directory)}"


def check_restart(target: Run, run: str | Path) -> None:
    """Before ``finetune`` trains into ``target`` (holding its lock): a ``ValueError`` for a folder holding a
    finished fine-tune, or a stopped one with a checkpoint (:func:`restart_advice`). A stopped one without a
    checkpoint is simply started over; a folder holding another kind of run is refused by ``fit``."""
    from masklab.train.checkpoint import CHECKPOINT_NAME

    if not (target.path / CHECKPOINT_NAME).exists() or not is_classifier(_config(target)):
        return
    out = target.path
    if finished(out):
        raise ValueError(f"{out} already holds a finished fine-tune ({out / METRICS_FILE}); give another --out, or "
                         f"delete {out} (rm -r {out}) to fine-tune again")  # fmt: skip
    raise ValueError(f"{_stopped(out)}; {restart_advice(out, run)}")


def stopped_message(out: Path, run: str | Path) -> str:
    """What a Ctrl-C outside training says: where the fine-tune of ``run`` into ``out`` stands, if it trained."""
    from masklab.train.checkpoint import CHECKPOINT_NAME

    if not (out / CHECKPOINT_NAME).exists() or finished(out) or not is_classifier(_config(Run(out))):
        return "interrupted"
    return f"interrupted: {_stopped(out)}; {restart_advice(out, run)}"


def _config(run: Run) -> dict[str, Any]:
    try:
        return run.config()
    except (OSError, ValueError):
        return {}


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
    or a legacy checkpoint of one), else ``path/finetune`` or a legacy ``path/finetune-classify``. A fine-tune
    that has not finished there (no ``metrics.json``) is a ``ValueError`` saying why (:func:`unfinished_message`)."""
    path = Path(path)
    candidates = [path, path / FINETUNE_DIR, *(path / d for d in LEGACY_DIRS)]
    for candidate in candidates:
        if finished(candidate):
            return candidate
    for candidate in candidates[:2]:  # a fine-tune still running, or stopped before it wrote its model
        if (candidate / "config.json").is_file() and is_classifier(_config(Run(candidate))):
            raise ValueError(unfinished_message(candidate))
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
