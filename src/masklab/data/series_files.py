"""Reading series values: one array as a float32 ``(T, C)`` series (what a series may hold, checked), UCR/UEA
``.ts`` files, and the warning for padded arrays given without their lengths. Used by
:mod:`masklab.data.series`."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

MAX_ABS_VALUE = 1e15  # larger magnitudes overflow instance normalisation's float32 sum of squares (about 1e19)


def as_series(array: np.ndarray, where: str) -> np.ndarray:
    """One series ``(T,)`` or ``(T, C)`` of real numbers as float32 ``(T, C)`` (NaN = a step not observed);
    complex, non-numeric, infinite values and magnitudes over :data:`MAX_ABS_VALUE` (the model's instance
    normalisation sums squares in float32: ±1e15 leaves room for ten million steps) are errors naming ``where``."""
    if np.iscomplexobj(array):  # a cast would drop the imaginary part without a word
        raise ValueError(f"{where}: complex values; series must hold real numbers")
    raw = np.asarray(array)
    if raw.dtype.kind not in "iufO":  # bool, dates, durations, text, records: not measurements to model
        raise ValueError(f"{where}: {raw.dtype} values; a series holds numbers (NaN = a step not observed)")
    try:
        wide = raw.astype(np.float64)
    except (TypeError, ValueError) as err:  # an object array holding text
        raise ValueError(f"{where}: values that are not numbers ({err})") from None
    if np.isinf(wide).any():
        raise ValueError(f"{where}: infinite values (use NaN for steps that were not observed)")
    if (np.abs(np.nan_to_num(wide)) > MAX_ABS_VALUE).any():
        biggest = float(np.nanmax(np.abs(wide)))
        beyond = ", beyond float32's range" if biggest > float(np.finfo(np.float32).max) else ""
        raise ValueError(f"{where}: values up to {biggest:.3g} in magnitude{beyond}; series values must be within "
                         f"±{MAX_ABS_VALUE:g} (the model's normalisation squares them in float32): rescale them, "
                         "e.g. divide by a power of ten")  # fmt: skip
    out = wide.astype(np.float32)
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] < 1:
        raise ValueError(f"{where}: expected a (T,) or (T, C) array with T >= 1, got shape {out.shape}")
    if np.isinf(out).any():
        raise ValueError(f"{where}: infinite values (use NaN for steps that were not observed)")
    return out


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """Series and class labels of a UCR/UEA ``.ts`` file (``@data`` rows ``c1 values:c2 values:label``;
    ``?`` = missing). Only the plain layout (no timestamps) is read; anything else is an error naming the file."""
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if line.lower().startswith("@timestamps true"):
                    raise ValueError(f"{path}: .ts files with timestamps are not supported")
                in_data = line.lower() == "@data"
                continue
            *channels, label = line.split(":")
            try:
                rows = [[float("nan") if v == "?" else float(v) for v in c.split(",")] for c in channels]
            except ValueError as err:
                raise ValueError(f"{path}:{number}: not a number ({err})") from None
            if len({len(r) for r in rows}) != 1:
                raise ValueError(f"{path}:{number}: channels have different lengths")
            series.append(as_series(np.array(rows).T, f"{path}:{number}"))
            labels.append(label.strip())
    if not series:
        raise ValueError(f"{path}: no @data rows")
    return series, labels


def warn_trailing_nan(series: list[np.ndarray], where: str) -> None:
    """A padded array without ``lengths`` whose series end in steps where nothing is observed: NaN is 'not
    observed', so those steps are imputed and forecast from, which is wrong if they are padding: say so."""
    ends = [i for i, s in enumerate(series) if len(s) > 1 and np.isnan(s[-1]).all() and not np.isnan(s).all()]
    if ends:
        warnings.warn(f"{where}: {len(ends)} of {len(series)} series end in steps where nothing is observed (e.g. "
                      f"series {ends[0]}, 0-based); they are taken as unobserved steps, not padding. If they are "
                      "padding, save the values with a 'lengths' array in an .npz", stacklevel=4)  # fmt: skip
