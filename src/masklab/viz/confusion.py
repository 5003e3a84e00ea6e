"""Confusion matrices: counting, a text table and a PNG (rows = true class, columns = predicted class)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch

from masklab.viz.literal import LITERAL


def confusion_matrix(y_true: torch.Tensor | Sequence[int], y_pred: torch.Tensor | Sequence[int], num_classes: int):
    """Counts ``(C, C)`` long: entry ``[t, p]`` = examples of true class ``t`` predicted as ``p``."""
    y_true, y_pred = torch.as_tensor(y_true).long().flatten(), torch.as_tensor(y_pred).long().flatten()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.numel()} entries but y_pred {y_pred.numel()}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(f"{name} holds a class outside [0, {num_classes})")
    flat = torch.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)


def format_confusion(matrix: torch.Tensor, names: Sequence[str]) -> str:
    """A fixed-width table with per-class recall (the diagonal over the row total; ``n/a`` for a class with no
    example, whose recall is undefined)."""
    width = max(6, *(len(n) for n in names)) + 1
    lines = ["true \\ pred".ljust(width) + "".join(n[: width - 1].rjust(width) for n in names) + "  recall"]
    for i, name in enumerate(names):
        row = matrix[i]
        total = int(row.sum())
        recall = f"{float(row[i]) / total:6.3f}" if total else "n/a".rjust(6)
        lines.append(name.ljust(width) + "".join(str(int(v)).rjust(width) for v in row) + f"  {recall}")
    return "\n".join(lines)


def plot_confusion(matrix: torch.Tensor, names: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """Write the matrix as a PNG heat map with counts in the cells (atomic write; needs matplotlib)."""
    try:
        from matplotlib.figure import Figure  # the OO API: no global pyplot state, no windows
    except ImportError as err:
        raise ImportError("plot_confusion needs matplotlib: pip install 'masklab[viz]'") from err
    from masklab.core.io import atomic_write_bytes

    counts = matrix.cpu().numpy()
    size = 1.2 + 0.8 * len(names)
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", **LITERAL)
    ax.set_yticks(range(len(names)), names, **LITERAL)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = counts.max() / 2 if counts.size else 0
    for t in range(counts.shape[0]):
        for p in range(counts.shape[1]):
            color = "white" if counts[t, p] > threshold else "black"
            ax.text(p, t, str(int(counts[t, p])), ha="center", va="center", color=color)
    ax.set_title(title or "confusion matrix", **LITERAL)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())
