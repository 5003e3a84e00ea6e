"""Pictures of series: masked patches with their reconstructions, and forecasts with the horizon shaded.

Arrays are numpy: a series ``(T, C)`` (NaN = not observed), ``hidden`` bool ``(T, C)`` True = a step whose
patch was hidden, a reconstruction ``(T, C)``; only the first ``channels`` channels are drawn. Titles are
drawn literally (a ``$`` in a series id or file name is a dollar sign).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from masklab.core.io import atomic_write_figure
from masklab.viz.literal import LITERAL

# Titles name series and files (user text): drawn as written, never as mathtext ("$...$") or TeX.
TITLE = {**LITERAL, "fontsize": 8}


def _figure(rows: int, cols: int, size: tuple[float, float]):
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("series plots need matplotlib: pip install 'masklab[viz]'") from err
    fig = Figure(figsize=(size[0] * cols, size[1] * rows), layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _shade(ax, steps: np.ndarray, color: str, label: str | None) -> None:
    """Shade the runs of True in ``steps`` (T,)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], steps.astype(int), [0]])))
    for i, (start, stop) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        ax.axvspan(start - 0.5, stop - 0.5, color=color, alpha=0.15, lw=0, label=label if i == 0 else None)


def plot_reconstructions(
    series: Sequence[np.ndarray],
    hidden: Sequence[np.ndarray],
    recon: Sequence[np.ndarray],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    channels: int = 2,
) -> Path:
    """One panel per series and channel: the series, its hidden patches shaded, the model's reconstruction
    of them dashed."""
    n_ch = min(channels, series[0].shape[1])
    fig, axes = _figure(len(series), n_ch, (4.2, 1.9))
    for i, (x, h, r) in enumerate(zip(series, hidden, recon, strict=True)):
        for c in range(n_ch):
            ax = axes[i][c]
            t = np.arange(len(x))
            _shade(ax, h[:, c], "tab:red", "hidden patches" if i == c == 0 else None)
            ax.plot(t, x[:, c], color="black", lw=1.0, label="series" if i == c == 0 else None)
            ax.plot(t, np.where(h[:, c], r[:, c], np.nan), color="tab:red", lw=1.4, ls="--", marker=".", ms=3,
                    label="reconstruction" if i == c == 0 else None)  # fmt: skip
            title = titles[i] if titles else f"series {i}"
            ax.set_title(f"{title}, channel {c}", **TITLE)
            ax.tick_params(labelsize=7)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(fig, path, dpi=110)
    return path


def plot_forecasts(
    history: Sequence[np.ndarray],
    forecast: Sequence[np.ndarray],
    path: str | Path,
    *,
    truth: Sequence[np.ndarray] | None = None,
    titles: Sequence[str] | None = None,
    channel: int = 0,
) -> Path:
    """One panel per series: its history, the forecast ``(H, C)`` after it with the horizon shaded, and the
    true continuation when known."""
    fig, axes = _figure(len(history), 1, (7.0, 1.9))
    for i, (x, f) in enumerate(zip(history, forecast, strict=True)):
        ax = axes[i][0]
        T, H = len(x), len(f)
        ax.axvspan(T - 0.5, T + H - 0.5, color="tab:blue", alpha=0.12, lw=0, label="horizon" if i == 0 else None)
        ax.plot(np.arange(T), x[:, channel], color="black", lw=1.0, label="history" if i == 0 else None)
        if truth is not None:
            ax.plot(np.arange(T, T + H), truth[i][:, channel], color="black", lw=1.0, ls=":",
                    label="truth" if i == 0 else None)  # fmt: skip
        ax.plot(np.arange(T, T + H), f[:, channel], color="tab:blue", lw=1.6, label="forecast" if i == 0 else None)
        ax.set_title(titles[i] if titles else f"series {i}, channel {channel}", **TITLE)
        ax.tick_params(labelsize=7)
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(fig, path, dpi=110)
    return path
