"""Long-format series files (one row per series id and time step): reading the file and putting each series'
rows on its time axis, for :func:`masklab.data.series.read_long_frame`.

The time column orders each series' rows: numbers as numbers, datetimes as datetimes, and text as dates
(``pd.to_datetime``, one format inferred from the values: year first, or month or day first where only one of
them reads every value; dates that read both ways with different results, such as ``1/2/2024``, are refused:
write ISO dates, ``2024-01-31``); text that is not dates in one format is refused, never sorted as text.

Dates that mark whole months (all on one day of the month, or all on a month's last day, at midnight) are
counted in months, so monthly, quarterly and yearly series are regular although their months differ in days.
For integer and datetime times a series' step is its most common difference between consecutive times; when
every difference is a whole number of steps, the missing times become steps with nothing observed (NaN rows),
so later values keep their place in time. Otherwise (fractional numbers, uneven steps, or a grid over
``MAX_SPREAD`` times longer than the rows) the rows are taken as consecutive steps in time order, with a
warning naming the series.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np


def read_long_file(path: Path, csv: bool) -> Any:
    """The ``DataFrame`` of a long-format CSV / Parquet file; an empty file or one without rows is an error
    naming the file."""
    import pandas as pd

    if csv:
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ValueError(f"{path}: empty file (no header, no rows)") from None
    else:
        frame = pd.read_parquet(path)
    if len(frame) == 0:
        raise ValueError(f"{path}: has a header but no rows")
    return frame


def time_values(column: Any, name: str, where: str) -> tuple[np.ndarray, bool]:
    """``(times, regular)``: the time column as numbers that sort in time order (int64 nanoseconds for dates),
    and whether they may be laid on a grid of whole steps (integers and dates, not fractional numbers)."""
    from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

    if is_numeric_dtype(column) and not is_bool_dtype(column):
        values = column.to_numpy(np.float64)
        whole = bool(np.all(values == np.round(values)))
        return (values.astype(np.int64), True) if whole else (values, False)
    if not is_datetime64_any_dtype(column):
        text = column.astype(str)
        year_first = bool(text.str.match(YEAR_FIRST).all())  # 2024-01-31, 2024/1/31: never day first
        readings = [r for r in (_dates(text, False), None if year_first else _dates(text, True)) if r is not None]
        if not readings:
            bad = _first_bad_date(text)
            raise ValueError(f"{where}: time column {name!r} holds text that is not dates in one format (e.g. "
                             f"{bad!r}); give numbers or ISO dates (2024-01-31)")  # fmt: skip
        if len(readings) == 2 and not readings[0].equals(readings[1]):
            example = text[(readings[0] != readings[1]).to_numpy()].iloc[0]
            raise ValueError(f"{where}: time column {name!r} holds dates that read month first or day first (e.g. "
                             f"{example!r}); give ISO dates (2024-01-31) or numbers")  # fmt: skip
        column = readings[0]
    months = _calendar_months(column)
    return (months, True) if months is not None else (column.to_numpy("datetime64[ns]").astype(np.int64), True)


def _calendar_months(dates: Any) -> np.ndarray | None:
    """Month numbers (``year * 12 + month``) of dates that mark whole months, all at midnight and all on one day
    of the month (at most the 28th) or all on a month's last day, else None. A monthly, quarterly or yearly
    series is regular in months, not in days (January has 31, February 28 or 29)."""
    import pandas as pd

    dates = pd.Series(dates)
    if len(dates) < 2 or not (dates == dates.dt.normalize()).all():
        return None
    day = dates.dt.day
    if not ((day.nunique() == 1 and day.iloc[0] <= 28) or dates.dt.is_month_end.all()):
        return None
    return (dates.dt.year * 12 + dates.dt.month - 1).to_numpy(np.int64)


YEAR_FIRST = r"\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"


def _dates(text: Any, dayfirst: bool) -> Any:
    """``text`` read as dates in one format (``dayfirst``: day before month), or None when it is not."""
    import pandas as pd

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            dates = pd.to_datetime(text, dayfirst=dayfirst)
        except (ValueError, TypeError, OverflowError):
            return None
    # "could not infer format" (each value read its own way) or "parsing in %m/%d/%Y although dayfirst": no
    return None if any(issubclass(w.category, UserWarning) for w in said) else dates


def _first_bad_date(text: Any) -> str:
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            first = pd.to_datetime(text.iloc[:1])
        except (ValueError, TypeError, OverflowError):
            return str(text.iloc[0])
        fmt = pd.tseries.api.guess_datetime_format(str(text.iloc[0]))
        parsed = pd.to_datetime(text, format=fmt, errors="coerce") if fmt else first.reindex(text.index)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    return str(text.iloc[bad[0]]) if len(bad) else str(text.iloc[0])


MAX_SPREAD = 10  # a series laid on its grid may be at most this many times longer than its rows


def on_time_axis(times: np.ndarray, values: np.ndarray, regular: bool) -> tuple[np.ndarray, bool]:
    """``(values, even)``: ``values`` (rows in time order) with a NaN row for each missing step when ``regular``
    times are a whole number of steps apart; ``even`` is False when the rows were kept as they are although
    their times are unevenly spaced."""
    if len(times) < 2:
        return values, True
    gaps = np.diff(times)
    if not regular:
        return values, bool(np.allclose(gaps, gaps[0], rtol=1e-6, atol=0))
    counts = Counter(gaps.tolist())
    step = min(counts, key=lambda g: (-counts[g], g))  # the most common difference (ties: the smallest)
    positions = (times - times[0]) // step
    if np.any(gaps % step) or positions[-1] + 1 > MAX_SPREAD * len(times):  # a stray far-off time: no grid
        return values, False
    out = np.full((int(positions[-1]) + 1, values.shape[1]), np.nan, dtype=values.dtype)
    out[positions] = values
    return out, True


def warn_uneven(keys: list[str], where: str, time_column: str) -> None:
    if keys:
        shown = ", ".join(repr(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        warnings.warn(f"{where}: series {shown} have unevenly spaced {time_column!r} values: their rows are taken "
                      "as consecutive steps", stacklevel=3)  # fmt: skip
