"""Picture of anomaly explanations: for each shown row, which cells carry its score and how far off they are."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from masklab.core.io import atomic_write_figure
from masklab.viz.literal import LITERAL

if TYPE_CHECKING:
    import pandas as pd


def _short(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "NA" if not np.isfinite(value) else f"{value:.3g}"
    return str(value)[:10]


def plot_explanations(explanation: pd.DataFrame, png_path: str | Path, *, title: str = "anomaly explanations") -> Path:
    """Write a heat map: one line per row of ``explanation`` (the long table of
    :meth:`masklab.estimators.MaskedAnomalyDetector.explain`; a ``row`` or ``data_row`` column), one column per
    table column, colour = the cell's share of its row's score; the cells carrying at least 15% of a row's
    score are annotated ``observed -> expected``. Rows are ordered by score, highest first. Needs matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_explanations needs matplotlib: pip install 'masklab[viz]'") from err
    key = "data_row" if "data_row" in explanation.columns else "row"
    if explanation.empty:
        raise ValueError("no explanations to plot")
    order = explanation.groupby(key)["anomaly_score"].first().sort_values(ascending=False)
    rows, columns = list(order.index), list(dict.fromkeys(explanation["column"]))
    share = np.full((len(rows), len(columns)), np.nan)
    where = {r: i for i, r in enumerate(rows)}
    col_at = {c: j for j, c in enumerate(columns)}
    notes = []
    for line in explanation.itertuples(index=False):
        i, j = where[getattr(line, key)], col_at[line.column]
        share[i, j] = line.share
        if line.share >= 0.15:
            notes.append((i, j, f"{_short(line.observed)}\n→ {_short(line.expected)}"))
    fig = Figure(figsize=(max(6.0, 0.9 * len(columns) + 2), max(3.0, 0.5 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(np.nan_to_num(share, nan=0.0), cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    for i, j, text in notes:
        ax.text(j, i, text, ha="center", va="center", fontsize=6, color="black" if share[i, j] < 0.6 else "white",
                **LITERAL)  # fmt: skip
    ax.set_xticks(range(len(columns)), [str(c) for c in columns], rotation=45, ha="right", fontsize=7, **LITERAL)
    ax.set_yticks(range(len(rows)), [f"{key.replace('_', ' ')} {r} ({order[r]:.3g})" for r in rows], fontsize=7,
                  **LITERAL)  # fmt: skip
    ax.set_title(title + "\ncolour: share of the row's score; text: observed → expected", fontsize=9, **LITERAL)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    path = Path(png_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_figure(fig, path, dpi=120)
    return path
