"""What ``impute`` and ``score`` write for tables: cells filled as text at full precision, and output files
checked against the input (by any name) before any work, then written atomically (a temporary file beside
the target, renamed over it: a failed write leaves the old file, and a hard link to it keeps its content)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from masklab.recipes.common import check_output_is_not_input, check_writable, same_file

if TYPE_CHECKING:
    import pandas as pd


def format_cell(value: object) -> str:
    """A filled value as CSV text: the shortest text that reads back as the same number, never in exponent
    notation, a whole number without ``.0`` (an integer column's cell stays an integer)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return np.format_float_positional(float(value), unique=True, trim="-")
    return str(value)


def fill_text_cells(text: pd.DataFrame, filled: pd.DataFrame, fill: dict[str, np.ndarray], source: str) -> pd.DataFrame:
    """``text`` (every cell its original string, as read with ``as_text=True``) with the cells that ``fill``
    marks (``bool (N,)`` per column, True = was missing) replaced by ``filled``'s values written as text
    (:func:`format_cell`); the other cells keep their exact original text. ``source`` names the table in
    errors."""
    if len(text) != len(filled):
        raise ValueError(f"{source}: rows differ between the text and typed reads ({len(text)} vs {len(filled)})")
    out = text.copy()
    for column, rows in fill.items():
        if rows.any():
            out.loc[rows, column] = [format_cell(v) for v in filled.loc[rows, column]]
    return out


def write_table(frame: pd.DataFrame, target: str | Path) -> Path:
    """Write ``frame`` to ``target`` (``.parquet``; else CSV, tab-separated for ``.tsv``) atomically."""
    from masklab.core.io import _atomic_write
    from masklab.data.tables import PARQUET_SUFFIXES, _suffix

    suffix = _suffix(Path(target))

    def write(tmp: Path) -> None:
        if suffix in PARQUET_SUFFIXES:
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")

    return _atomic_write(target, write)


def check_table_outputs(source: str | Path, outputs: Sequence[tuple[str, Path]], task: str) -> None:
    """Before any work: no output (``(flag, path)`` pairs) is the input ``source`` by any name, and each can be
    written where it goes (errors name the flag)."""
    for flag, path in outputs:
        check_output_is_not_input(path, source, task, flag)
    for flag, path in outputs:
        check_writable(path, flag)


def histogram_path(target: Path, histogram: str | Path | None) -> Path:
    """Where ``score`` draws its histogram (``--histogram``, else ``-o`` with ``.png``), checked before any work:
    a ``.png`` name that is not the scores file itself."""
    from masklab.data.pixel_masks import require_png_name

    if histogram is None and target.suffix.lower() == ".png":
        raise ValueError(f"-o {target}: the scores are a CSV and the histogram goes to -o with .png, so they would "
                         "be the same file; name the scores .csv (or give --histogram)")  # fmt: skip
    png = require_png_name(histogram if histogram else target.with_suffix(".png"), "--histogram")
    if same_file(png, target):
        raise ValueError(f"--histogram {png} is the scores file -o {target}; pick another path for one of them")
    return png


def explain_paths(target: Path) -> tuple[Path, Path]:
    """``score --explain``'s ``OUTPUT.explain.csv`` and ``OUTPUT.explain.png``."""
    return target.with_suffix(".explain.csv"), target.with_suffix(".explain.png")
