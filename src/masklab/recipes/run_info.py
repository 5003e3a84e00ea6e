"""``describe_run``: what a training run directory holds (kind, configs, step, parameters, checkpoint, loss)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def describe_run(run_dir: str | Path) -> dict[str, Any]:
    """A JSON-able summary of a run directory; the checkpoint's hash is verified (``CheckpointError``)."""
    from masklab.train.checkpoint import CHECKPOINT_NAME, METRICS_NAME, load_run
    from masklab.train.progress import read_metrics

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    state = run.model_state
    records = read_metrics(run_dir / METRICS_NAME)
    losses = [r["loss"] for r in records if isinstance(r.get("loss"), (int, float))]
    return {
        "run_dir": str(run_dir.resolve()),
        "kind": run.config["kind"],
        "masklab_version": run.metadata.get("masklab_version", run.config.get("masklab_version")),
        "step": run.step,
        "total_steps": run.config.get("train", {}).get("steps"),
        "num_parameters": sum(t.numel() for t in state.values()),
        "num_tensors": len(state),
        "checkpoint_bytes": (run_dir / CHECKPOINT_NAME).stat().st_size,
        "dtypes": dict(Counter(str(t.dtype).removeprefix("torch.") for t in state.values())),
        "model": run.config["model"],
        "train": run.config.get("train", {}),
        "metrics": {
            "records": len(records),
            "last": records[-1] if records else None,
            "min_loss": min(losses) if losses else None,
        },
    }


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    for exponent, unit in enumerate(("KiB", "MiB", "GiB"), start=1):
        if num_bytes < 1024 ** (exponent + 1) or unit == "GiB":
            return f"{num_bytes / 1024**exponent:.1f} {unit}"
    return f"{num_bytes} B"


def format_info(info: dict[str, Any]) -> str:
    """The human-readable rendering of :func:`describe_run`."""
    total = f" / {info['total_steps']}" if info["total_steps"] is not None else ""
    dtypes = ", ".join(f"{name} x{count}" for name, count in sorted(info["dtypes"].items()))
    metrics = info["metrics"]
    if metrics["last"] is not None:
        last = metrics["last"]
        loss_line = f"{last.get('loss', float('nan')):.6g} at step {last.get('step')}"
        loss_line += f" (min {metrics['min_loss']:.6g}, {metrics['records']} records)"
    else:
        loss_line = "no metrics.jsonl records"
    lines = [
        f"run          {info['run_dir']}",
        f"kind         {info['kind']}   (masklab {info['masklab_version']})",
        f"step         {info['step']}{total}",
        f"parameters   {info['num_parameters']:,} in {info['num_tensors']} tensors",
        f"dtypes       {dtypes}",
        f"checkpoint   {_size(info['checkpoint_bytes'])} (integrity hash verified)",
        f"last loss    {loss_line}",
        "model        " + json.dumps(info["model"], sort_keys=True),
        "train        " + " ".join(f"{k}={v}" for k, v in info["train"].items()),
    ]
    return "\n".join(lines)
