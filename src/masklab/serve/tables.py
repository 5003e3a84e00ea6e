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


def read_upload(run: LoadedRun, data: bytes, exclude: str) -> Upload:
    """Parse the CSV in ``data`` (field ``file``) and check it against the run's columns."""
    from masklab.data.tables import read_table_file
    from masklab.recipes.table import inference_table

    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("file", "expected a UTF-8 CSV file (a header line, then one row per line)", 415) from None
    names = tuple(n.strip() for n in exclude.split(",") if n.strip())
    with tempfile.TemporaryDirectory(prefix="masklab-serve-") as tmp:
        path = Path(tmp) / "upload.csv"
        path.write_bytes(data)
        try:
            table = inference_table(run.path, str(path), exclude=names)
            text = read_table_file(path, as_text=True)
        except (ValueError, FileNotFoundError) as err:
            # The messages name the server's temporary file and the CLI's option: say it in the page's words.
            message = str(err).replace(str(path), "the uploaded CSV").replace("--exclude", "the 'exclude' field")
            field = "exclude" if "named by" in message else "file"
            raise InputError(field, message) from None
    return Upload(table.frame, text)


def impute(run: LoadedRun, data: bytes, exclude: str) -> tuple[str, dict[str, int]]:
    """(the CSV with its missing cells filled, filled-cell count per column)."""
    from masklab.recipes.table import fill_text_cells
    from masklab.tokenizers.table import missing_cells

    upload = read_upload(run, data, exclude)
    try:
        filled = run.model.transform(upload.features[list(run.model.feature_names_in_)])  # the model's order
    except ValueError as err:  # e.g. a category the run never saw
        raise InputError("file", str(err)) from None
    fill = {c: missing_cells(upload.features[c]) for c in upload.features.columns}
    out = fill_text_cells(upload.text, filled, fill, "the uploaded CSV")
    return out.to_csv(index=False), {c: int(rows.sum()) for c, rows in fill.items()}


def score(run: LoadedRun, data: bytes, exclude: str) -> dict:
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
        raise InputError("file", str(err)) from None
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
