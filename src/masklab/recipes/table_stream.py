"""``impute`` / ``score`` on tables bigger than memory: the file is read in chunks (CSV) or row groups
(Parquet) and the output written as it goes (:mod:`masklab.data.table_stream`); results equal the whole-file
recipes' (:mod:`masklab.recipes.table`) because masked-table inference is row-independent."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _features(estimator, exclude: Sequence[str], source, run: str | Path):
    """The model's feature names and a check of each chunk's columns, as the whole-file recipes check them:
    every feature present, and no other column but those set aside (``exclude``, and the run's own excluded
    and label columns from ``table.json``)."""
    from masklab.recipes.table import check_known_columns, trained_aside

    if str(source).startswith("builtin:"):
        raise ValueError(f"--chunk-rows streams a file; {source} is a built-in table (drop --chunk-rows)")
    names = [n for n in estimator.feature_names_in_ if n not in exclude]
    trained_exclude, trained_label = trained_aside(run)
    aside = {*exclude, *trained_exclude, *([trained_label] if trained_label else [])}

    def check(chunk) -> None:
        absent = [n for n in names if n not in chunk.columns]
        if absent:
            raise ValueError(f"{source}: column(s) {absent} the model was trained on are missing")
        check_known_columns(source, chunk.columns, names, aside)

    return names, check


def impute_chunked(run: str | Path, source: str | Path, output: str | Path, *, chunk_rows: int,
                   exclude: Sequence[str] = (), handle_unknown: str = "error",
                   device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Fill the missing feature cells of ``source`` chunk by chunk into ``output``: only missing cells change,
    other columns pass through, and CSV to CSV keeps every other cell's original text, exactly as the
    whole-file :func:`~masklab.recipes.table.impute` writes it. Returns ``{"rows"}``."""
    from masklab.data.table_stream import map_table, plan_columns
    from masklab.data.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _suffix
    from masklab.recipes.common import check_output_is_not_input
    from masklab.recipes.table import load_imputer
    from masklab.recipes.table_output import fill_text_cells
    from masklab.tokenizers.table import missing_cells

    check_output_is_not_input(output, source, "impute")
    imputer = load_imputer(run, handle_unknown=handle_unknown, device=device)
    names, check = _features(imputer, exclude, source, run)
    as_text = _suffix(Path(source)) in CSV_SUFFIXES and _suffix(Path(output)) in CSV_SUFFIXES
    # A Parquet file holds one type per column: each chunk is cast to the whole file's types, and the cells
    # the imputer fills take the values and types the whole-file impute gives them.
    plans = plan_columns(source, chunk_rows) if _suffix(Path(output)) in PARQUET_SUFFIXES else None
    integers = _whole_file_integers(imputer, plans, names) if plans else set()
    if plans:
        _record_observed_values(imputer, plans)

    def fill(chunk, text=None):
        check(chunk)
        filled = imputer.transform(chunk[names])
        for name in integers:  # the whole-file impute makes these int64: every value is a whole number
            filled[name] = filled[name].astype("int64")
        if text is not None:  # the typed chunk says which cells are missing; the text keeps the others
            return fill_text_cells(text, filled, {n: missing_cells(chunk[n]) for n in names}, str(source))
        out = chunk.copy()
        for name in names:
            out[name] = filled[name]
        return out

    try:
        rows = map_table(source, output, fill, chunk_rows=chunk_rows, text=as_text, plans=plans)
    except OSError as err:
        raise _naming_output(err, output) from None
    return {"rows": rows}


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _naming_output(err: OSError, output: str | Path) -> OSError:
    """A full disk (or quota, or file size limit) while writing names ``output``: the OS error and pyarrow's
    text ("Error writing bytes to file. Detail: [errno 28] ...") name no file. Other errors are kept as they are."""
    code = (
        err.errno
        if err.errno in _WRITE_ERRNOS
        else next((e for e in _WRITE_ERRNOS if os.strerror(e) in str(err)), None)
    )
    if code is None or err.filename is not None:
        return err
    return OSError(code, os.strerror(code), str(output))


def _whole_file_integers(imputer, plans, names) -> set[str]:
    """Integer columns the whole-file impute returns as int64 (float only for their missing cells, every
    observed value whole), though a chunk without a missing cell stays float."""
    import pandas as pd

    specs = {spec.name: spec for spec in imputer.schema_.columns}
    return {name for name in names if specs[name].kind == "numeric" and specs[name].integer and
            plans[name].missing and plans[name].whole and pd.api.types.is_float_dtype(plans[name].dtype)}  # fmt: skip


def _record_observed_values(imputer, plans) -> None:
    """Let the imputer map a predicted category to the value the whole file holds for it (a bool of a bool
    column), as the whole-file impute does, even when the chunk itself has no such observed cell."""
    recorded = dict(getattr(imputer, "category_values_", None) or {})
    for spec in imputer.schema_.columns:
        observed = plans[spec.name].values if spec.name in plans else {}
        if spec.kind == "categorical" and observed:
            before = recorded.get(spec.name) or [None] * len(spec.categories)
            recorded[spec.name] = [observed.get(key, old) for key, old in zip(spec.categories, before, strict=True)]
    imputer.category_values_ = recorded


def score_chunked(run: str | Path, source: str | Path, output: str | Path, *, chunk_rows: int,
                  exclude: Sequence[str] = (), threshold: float | None = None,
                  handle_unknown: str = "error", device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Anomaly scores of ``source`` chunk by chunk -> ``output`` CSV (``row``, ``anomaly_score``[, ``is_anomaly``]);
    no histogram or label metrics (they need every score). A row with no observed cell scores NaN (empty
    cells). Returns ``{"rows", "unscored"}``."""
    import math
    import warnings

    import numpy as np
    import pandas as pd

    from masklab.data.table_stream import map_table
    from masklab.recipes.table import load_detector

    # The same detector as the whole-file score (stored scoring, threshold), so chunked == whole file.
    detector = load_detector(run, threshold=threshold, handle_unknown=handle_unknown, device=device)
    names, check = _features(detector, exclude, source, run)
    done, unscored = [0], [0]

    def score(chunk):
        check(chunk)
        with warnings.catch_warnings():  # rows without an observed cell are counted in "unscored" instead
            warnings.simplefilter("ignore", UserWarning)
            scores = detector.anomaly_score(chunk[names])
        out = pd.DataFrame({"row": np.arange(done[0] + 1, done[0] + len(chunk) + 1), "anomaly_score": scores})
        if math.isfinite(detector.threshold_):
            flags = pd.array((scores > detector.threshold_).astype(int), dtype="Int64")
            flags[np.isnan(scores)] = pd.NA
            out["is_anomaly"] = flags
        done[0] += len(chunk)
        unscored[0] += int(np.isnan(scores).sum())
        return out

    try:
        rows = map_table(source, output, score, chunk_rows=chunk_rows)
    except OSError as err:
        raise _naming_output(err, output) from None
    return {"rows": rows, "unscored": unscored[0]}
