"""Histogram of anomaly scores (optionally split by a known label, with the decision threshold)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from masklab.core.io import atomic_write_figure
from masklab.viz.literal import LITERAL


def plot_score_histogram(
    scores: Sequence[float] | np.ndarray,
    png_path: str | Path,
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    threshold: float | None = None,
    title: str = "anomaly scores",
    xlabel: str = "anomaly score (higher = more anomalous)",
    bins: int = 60,
) -> Path:
    """Write a PNG histogram of ``scores`` (N,) (higher = more anomalous; e.g.
    :meth:`masklab.estimators.MaskedAnomalyDetector.anomaly_score`, whatever it combines) on a log-spaced axis
    when the scores are positive and span more than two decades; ``xlabel`` names them.

    ``labels`` (N,): 1 = known anomaly, 0 = normal, NaN = no label; the groups are drawn separately (the rows
    with no label as a third group, ``no label: N``); ``threshold`` draws a vertical line.
    Needs matplotlib (``pip install 'masklab[viz]'``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_score_histogram needs matplotlib: pip install 'masklab[viz]'") from err
    scores = np.asarray(scores, dtype=np.float64)
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        raise ValueError("no finite scores to plot")
    positive = finite.min() > 0
    log_axis = bool(positive and finite.max() / finite.min() > 100)
    if log_axis:
        edges = np.geomspace(finite.min(), finite.max(), bins + 1)
    else:
        edges = np.linspace(finite.min(), finite.max() if finite.max() > finite.min() else finite.min() + 1, bins + 1)
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    if labels is None:
        ax.hist(finite, bins=edges.tolist(), color="tab:blue")
    else:
        labels = np.asarray(labels, dtype=np.float64)  # NaN = no label
        if labels.shape != scores.shape:
            raise ValueError(f"labels has shape {labels.shape} but scores has {scores.shape}")
        keep = np.isfinite(scores)
        groups = [("normal (label 0)", labels == 0, "tab:blue"), ("anomaly (label 1)", labels == 1, "tab:red")]
        if np.isnan(labels[keep]).any():
            groups.append(("no label", np.isnan(labels), "tab:gray"))
        for name, rows, color in groups:
            group = scores[keep & rows]
            ax.hist(group, bins=edges.tolist(), alpha=0.6, color=color, label=f"{name}: {group.size}")
        ax.legend()
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    if log_axis:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.set_title(title, **LITERAL)  # names the table
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(fig, png_path, dpi=100)
    return png_path
