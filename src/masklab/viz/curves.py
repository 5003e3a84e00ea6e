"""Training curves from a run's ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from masklab.core.io import atomic_write_figure
from masklab.viz.literal import LITERAL


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from a killed writer
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, *, title: str | None = None) -> Path:
    """Plot training loss (and the learning rate, on a second axis) against the optimizer step.

    Needs matplotlib (``pip install 'masklab[viz]'``), imported here so the core stays light; raises
    ``ImportError`` without it and ``ValueError`` when the file holds no finite loss values.
    """
    try:
        # The object-oriented API touches no global pyplot state, so plotting from a training job cannot
        # open windows or clash with the caller's backend.
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_loss_curve needs matplotlib: pip install 'masklab[viz]'") from err
    metrics_path, png_path = Path(metrics_path), Path(png_path)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"no metrics file at {metrics_path}")
    records = [
        r
        for r in _read_jsonl(metrics_path)
        if isinstance(r.get("step"), int) and isinstance(r.get("loss"), (int, float)) and math.isfinite(r["loss"])
    ]
    if not records:
        raise ValueError(f"{metrics_path} holds no finite loss values to plot")
    steps = [r["step"] for r in records]
    losses = [r["loss"] for r in records]

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    # One record (a short run) draws no line: mark the point and write its value so the picture is never empty.
    ax.plot(steps, losses, color="tab:blue", linewidth=1.5, label="loss", marker="o" if len(steps) == 1 else None)
    if len(steps) == 1:
        ax.annotate(f"{losses[0]:.4g}", (steps[0], losses[0]), textcoords="offset points", xytext=(6, 6))
    # A log axis once the loss spans a decade keeps the late, slow improvement visible.
    if min(losses) > 0 and max(losses) / min(losses) > 10:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.grid(alpha=0.3)
    if all(isinstance(r.get("lr"), (int, float)) for r in records):
        lrs = [float(r["lr"]) for r in records]
        ax_lr = ax.twinx()
        ax_lr.plot(steps, lrs, color="tab:orange", linewidth=1.0, alpha=0.7)
        ax_lr.set_ylabel("learning rate", color="tab:orange")
    ax.set_title(title or f"{metrics_path.parent.name}: loss {losses[-1]:.4g} at step {steps[-1]}", **LITERAL)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(fig, png_path, dpi=120)
    return png_path


def write_run_loss_plot(run_dir: str | Path) -> str | None:
    """Draw ``RUN/loss.png`` from ``RUN/metrics.jsonl``; returns a one-line note instead of raising when it
    cannot (no matplotlib, no finite loss): a plot is a convenience and must never fail a finished run."""
    run_dir = Path(run_dir)
    try:
        plot_loss_curve(run_dir / "metrics.jsonl", run_dir / "loss.png")
    except ImportError:
        return "masklab: matplotlib is not installed; skipping loss.png"
    except Exception as err:
        return f"masklab: could not write loss.png: {err}"
    return None
