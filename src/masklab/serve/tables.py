"""The table panel's work: an uploaded CSV imputed (only its missing cells change) or scored for anomalies,
with each cell's reconstruction error so the page can point at the most surprising ones.

The upload is written to a private temporary file named by the server (the client never names a path) and read
with the same checks as ``masklab impute`` / ``masklab score`` (header, duplicate names, the run's columns).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from masklab.serve.errors import InputError
from masklab.serve.runs import LoadedRun

SHOWN_ROWS = 200  # rows the score panel lists (the highest scores); every row gets a score
TOP_CELLS = 10  # cells outlined as the most surprising


@dataclass(frozen=True)
class Upload:
    """A checked CSV upload: the run's feature columns (typed), every column as original text, the label."""

    features: pd.DataFrame
    text: pd.DataFrame


def excluded_names(values: list[str], columns: list[str]) -> tuple[str, ...]:
    """The columns named by the ``exclude`` field(s): a value that is a column of the upload is taken whole (a
    name with a comma in it), any other is a comma-separated list."""
    names: list[str] = []
    for value in values:
        parts = [value.strip()] if value.strip() in columns else [n.strip() for n in value.split(",")]
        names += [n for n in parts if n and n not in names]
    return tuple(names)


def read_upload(run: LoadedRun, data: bytes, exclude: list[str]) -> Upload:
    """Parse the CSV in ``data`` (field ``file``) and check it against the run's columns, as
    :func:`masklab.recipes.table.inference_table` does, with what was read of the run at load (its columns and
    the columns training set aside, ``run.info``), never its folder again."""
    from masklab.data.tables import read_table_file, split_columns
    from masklab.recipes.table import check_known_columns

    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("file", "expected a UTF-8 CSV file (a header line, then one row per line)", 415) from None
    features = list(run.model.schema_.names)
    with tempfile.TemporaryDirectory(prefix="masklab-serve-") as tmp:
        path = Path(tmp) / "upload.csv"
        path.write_bytes(data)
        try:
            frame = read_table_file(path)
            text = read_table_file(path, as_text=True)
        except (ValueError, FileNotFoundError) as err:  # the messages name the server's temporary file
            raise InputError("file", str(err).replace(str(path), "the uploaded CSV")) from None
    columns = [str(c) for c in frame.columns]
    names = excluded_names(exclude, columns)
    needed = [n for n in names if n in features]
    if needed:
        raise InputError("exclude", f"{needed} {'is a feature' if len(needed) == 1 else 'are features'} the model "
                         f"needs (its features: {features}); exclude only columns that are not features")  # fmt: skip
    absent = [n for n in names if n not in columns]
    if absent:
        raise InputError("exclude", f"column(s) {absent} named by the 'exclude' field are not in the uploaded CSV "
                         f"(its columns: {columns})")  # fmt: skip
    trained_label = run.info.get("label")
    label = trained_label if trained_label in columns and trained_label not in names else None
    aside = [c for c in run.info.get("exclude", []) if c in columns and c not in names and c != label]
    table = split_columns(frame, exclude=(*names, *aside), label=label)
    try:
        check_known_columns("the uploaded CSV", table.frame.columns, features)
    except ValueError as err:
        message = str(err).replace("pass --exclude COL,...", "name them in the 'exclude' field")
        raise InputError("file", message) from None
    missing = [n for n in features if n not in table.frame.columns]
    if missing:
        raise InputError("file", f"the uploaded CSV lacks column(s) {missing} the model was trained on; it needs "
                         f"the columns {features} (in any order)")  # fmt: skip
    return Upload(table.frame, text)


def model_error(err: ValueError) -> InputError:
    """A model's refusal of a cell (field ``file``), said in the page's words: a category the run never saw is
    a value to fix (the CLI's ``--handle-unknown`` is not offered here)."""
    message = str(err)
    if "--handle-unknown" in message:
        message = message.split("; to treat it as a missing cell", 1)[0]
        message += "; fix the value (use one of the known categories) or empty the cell to have it treated as missing"
    return InputError("file", message)


def impute(run: LoadedRun, data: bytes, exclude: list[str]) -> tuple[str, dict[str, int]]:
    """(the CSV with its missing cells filled, filled-cell count per column)."""
    from masklab.recipes.table import fill_text_cells
    from masklab.tokenizers.table import missing_cells

    upload = read_upload(run, data, exclude)
    try:
        filled = run.model.transform(upload.features[list(run.model.feature_names_in_)])  # the model's order
    except ValueError as err:  # e.g. a category the run never saw
        raise model_error(err) from None
    fill = {c: missing_cells(upload.features[c]) for c in upload.features.columns}
    out = fill_text_cells(upload.text, filled, fill, "the uploaded CSV")
    return out.to_csv(index=False), {c: int(rows.sum()) for c, rows in fill.items()}


def score(run: LoadedRun, data: bytes, exclude: list[str]) -> dict:
    """Row anomaly scores (higher = more anomalous) and per-cell errors of the highest-scoring rows."""
    upload = read_upload(run, data, exclude)
    detector = run.detector
    upload = Upload(upload.features[list(detector.feature_names_in_)], upload.text)  # the model's column order
    try:
        scores = detector.anomaly_score(upload.features)  # (N,)
        with warnings.catch_warnings():  # a missing cell is NaN at every scale: its mean is NaN, as wanted
            warnings.simplefilter("ignore", RuntimeWarning)
            cells = np.nanmean(detector.cell_errors(upload.features), axis=0)  # (N, C), NaN where missing
    except ValueError as err:
        raise model_error(err) from None
    columns = list(upload.features.columns)
    order = np.argsort(-scores, kind="stable")[:SHOWN_ROWS]
    shown = np.where(np.isfinite(cells[order]), cells[order], -np.inf)  # (shown rows, C)
    flat = [i for i in np.argsort(-shown, axis=None, kind="stable")[:TOP_CELLS] if np.isfinite(shown.flat[i])]
    top = [(int(order[i // len(columns)]), columns[i % len(columns)]) for i in flat]

    def number(value: float) -> float | None:
        return round(float(value), 6) if np.isfinite(value) else None

    return {
        "columns": columns,
        "total_rows": len(scores),
        "rows": [
            {
                "row": int(i) + 1,
                "score": number(scores[i]),
                "cells": [str(upload.text.iloc[i][c]) for c in columns],
                "errors": [number(e) for e in cells[i]],
            }
            for i in order
        ],
        "top_cells": [{"row": r + 1, "column": c, "error": number(cells[r, columns.index(c)])} for r, c in top],
    }
