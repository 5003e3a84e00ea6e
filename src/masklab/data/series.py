"""Variable-length multivariate time series: readers, the built-ins and the training dataset.

Shape legend: ``N`` series, ``B`` batch, ``T`` time steps (the longest in the batch), ``C`` channels.

A series is a float32 array ``(T_i, C)``; NaN marks a step that was not observed (never read as zero).
A batch pads every series to the longest one and carries three tensors:

* ``values``   float (B, T, C): the series, 0.0 where not observed or padded (the value is never used there);
* ``padding``  bool (B, T), True = padded step past the series' end (not a real time step);
* ``observed`` bool (B, T, C), True = a real, observed value (False for NaN and for padded steps).

Sources (``--data``):

* ``builtin:NAME``: UCR/UEA sets shipped in the ``sktime`` wheel (read offline, by path, from its ``.ts``
  files): ``japanese-vowels`` (12 channels, lengths 7-29, 9 classes), ``basic-motions`` (6 channels, length
  100, 4 classes), ``plaid`` (1 channel, lengths 100-1344, 11 classes). Train and test splits are kept.
* ``.npy``: an object array of ``(T_i,)`` / ``(T_i, C)`` arrays, or a numeric ``(N, T)`` / ``(N, T, C)`` array.
* ``.npz``: ``values`` as above, optional ``lengths`` (N,) (steps past a length are padding), ``labels`` (N,)
  and ``ids`` (N,) (unique names for outputs); any other array is refused (a misspelt name would be ignored).
* ``.csv`` / ``.parquet`` in long format: one row per (series id, time step), a column per channel. The time
  column orders the rows (numbers, datetimes, or text dates in one format; other text is refused); for integer
  and date times, missing steps (a whole number of the series' most common step) become NaN rows, so a series
  keeps its time axis; unevenly spaced times are kept as consecutive steps, with a warning
  (:mod:`masklab.data.series_long`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from masklab.data import package_file, parse_data_spec
from masklab.data.series_augment import SeriesAugment
from masklab.data.series_files import as_series as _as_series
from masklab.data.series_files import read_ts, warn_trailing_nan
from masklab.data.series_long import on_time_axis, read_long_file, time_values, warn_uneven

BUILTINS = {"japanese-vowels": "JapaneseVowels", "basic-motions": "BasicMotions", "plaid": "PLAID"}
DEFAULT_BUILTIN = "japanese-vowels"
_SKTIME_HINT = "pip install --no-deps sktime scikit-base"


@dataclass(frozen=True)
class SeriesSet:
    """``series``: N float32 arrays ``(T_i, C)`` (NaN = not observed); ``labels``: int (N,) or None;
    ``classes``: the label names behind the ints; ``split``: ``"train"``/``"test"`` per series (built-ins);
    ``ids``: each series' id in a long-format file (empty: series are known by their position)."""

    series: list[np.ndarray]
    name: str
    labels: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    split: np.ndarray | None = None
    channels: tuple[str, ...] = field(default=())
    ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.series:
            raise ValueError(f"{self.name}: no series")
        widths = {s.shape[1] for s in self.series}
        if len(widths) != 1:
            raise ValueError(f"{self.name}: series have different channel counts {sorted(widths)}")
        if self.ids and len(self.ids) != len(self.series):
            raise ValueError(f"{self.name}: {len(self.ids)} ids for {len(self.series)} series")
        if self.labels is not None and len(self.labels) != len(self.series):
            raise ValueError(f"{self.name}: {len(self.labels)} labels for {len(self.series)} series")
        empty = [i for i, s in enumerate(self.series) if np.isnan(s).all()]
        if empty:  # nothing to learn from, classify, embed or forecast: refused rather than given a made-up output
            raise ValueError(f"{self.name}: {len(empty)} series have no observed value (all NaN), e.g. series "
                             f"{empty[:5]} (0-based); drop them")  # fmt: skip

    def __len__(self) -> int:
        return len(self.series)

    @property
    def num_channels(self) -> int:
        return self.series[0].shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.series])

    def subset(self, indices: np.ndarray | list[int]) -> SeriesSet:
        idx = np.asarray(indices, dtype=int)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        ids = tuple(self.ids[i] for i in idx) if self.ids else ()
        return SeriesSet([self.series[i] for i in idx], self.name, pick(self.labels), self.classes,
                         pick(self.split), self.channels, ids)  # fmt: skip

    def names(self) -> list[str]:
        """What to call each series in an output: its id, else ``NAME[i]`` (0-based position)."""
        return list(self.ids) if self.ids else [f"{self.name}[{i}]" for i in range(len(self))]

    def part(self, split: str) -> SeriesSet:
        """The ``"train"`` or ``"test"`` series of a built-in (ValueError for a set without splits)."""
        if self.split is None:
            raise ValueError(f"{self.name} has no train/test split; split it yourself (SeriesSet.subset)")
        return self.subset(np.flatnonzero(self.split == split))


def _encode_labels(raw: list | np.ndarray | None) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if raw is None:
        return None, ()
    names = [str(v) for v in raw]
    classes = tuple(sorted(set(names), key=lambda s: (len(s), s) if s.lstrip("-").isdigit() else (math.inf, s)))
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[n] for n in names], dtype=np.int64), classes


# ------------------------------------------------------------------------------------------------ readers
def _builtin(name: str) -> SeriesSet:
    folder = BUILTINS[name]
    series, labels, split = [], [], []
    for part in ("train", "test"):
        path = package_file("sktime", "datasets", "data", folder, f"{folder}_{part.upper()}.ts",
                            install_hint=_SKTIME_HINT)  # fmt: skip
        s, y = read_ts(path)
        series += s
        labels += y
        split += [part] * len(s)
    codes, classes = _encode_labels(labels)
    return SeriesSet(series, f"builtin:{name}", codes, classes, np.array(split))


def _from_array(
    values: np.ndarray, lengths: np.ndarray | None, where: str, lengths_where: str = ""
) -> list[np.ndarray]:
    """The series of a padded ``(N, T[, C])`` array cut at ``lengths`` (or of an object array); ``where`` /
    ``lengths_where`` name the two arrays in errors."""
    if values.dtype == object:
        if lengths is not None:
            raise ValueError(f"{lengths_where}: 'lengths' is only for a padded numeric array, not an object array")
        return [_as_series(v, f"{where}[{i}]") for i, v in enumerate(values)]
    if values.ndim not in (2, 3):
        raise ValueError(f"{where}: expected (N, T) or (N, T, C) values, got shape {values.shape}")
    values = values if values.ndim == 3 else values[..., None]
    if lengths is None:
        series = [_as_series(v, f"{where}[{i}]") for i, v in enumerate(values)]
        warn_trailing_nan(series, where)
        return series
    lengths = np.asarray(lengths)
    whole = lengths.dtype.kind in "iu" or (lengths.dtype.kind == "f" and bool(np.all(lengths == np.round(lengths))))
    if lengths.shape != (len(values),) or not whole or (lengths < 1).any() or (lengths > values.shape[1]).any():
        raise ValueError(f"{lengths_where}: expected ({len(values)},) whole numbers in [1, {values.shape[1]}] (one per "
                         f"series of {where}), got {lengths.dtype} of shape {lengths.shape}")  # fmt: skip
    return [_as_series(v[: int(n)], f"{where}[{i}]") for i, (v, n) in enumerate(zip(values, lengths, strict=True))]


NPZ_ARRAYS = ("values", "lengths", "labels", "ids")  # what an .npz of series may hold


def _read_numpy(path: Path) -> SeriesSet:
    if path.suffix == ".npy":
        return SeriesSet(_from_array(np.load(path, allow_pickle=False), None, str(path)), str(path))
    with np.load(path, allow_pickle=False) as archive:
        if "values" not in archive:
            raise ValueError(f"{path}: an .npz needs a 'values' array (found {sorted(archive.files)})")
        unknown = sorted(set(archive.files) - set(NPZ_ARRAYS))  # a misspelt 'lengths' would make padding data
        if unknown:
            raise ValueError(f"{path}: unknown array(s) {unknown} in the .npz; it may hold {', '.join(NPZ_ARRAYS)}")
        lengths = archive.get("lengths")
        series = _from_array(archive["values"], lengths, f"{path}:values", f"{path}:lengths")
        raw, ids = archive.get("labels"), archive.get("ids")  # ids: written by `masklab impute` for long data
    for name, array in (("labels", raw), ("ids", ids)):
        if array is not None and array.shape != (len(series),):
            raise ValueError(f"{path}:{name}: expected shape ({len(series)},), one per series, got {array.shape}")
    if ids is not None and len(set(map(str, ids))) != len(ids):
        twice = next(i for i, n in Counter(map(str, ids)).items() if n > 1)
        raise ValueError(f"{path}:ids: the id {twice!r} names more than one series; ids name series in outputs")
    codes, classes = _encode_labels(None if raw is None else list(raw))
    return SeriesSet(series, str(path), codes, classes, ids=() if ids is None else tuple(str(i) for i in ids))


def _read_object_npy(path: Path) -> SeriesSet:
    # Object arrays need pickle to load; only ever for a file the user named, never for a run's own files.
    values = np.load(path, allow_pickle=True)
    return SeriesSet(_from_array(values, None, str(path)), str(path))


def read_long_frame(frame, *, id_column: str, time_column: str, label: str | None, where: str) -> SeriesSet:
    """Long-format rows (one per series id and time step) -> one series per id, on its time axis (missing
    steps are NaN rows; :mod:`masklab.data.series_long`)."""
    missing = [c for c in (id_column, time_column, label) if c is not None and c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: column(s) {missing} not found (columns: {list(frame.columns)})")
    channels = [c for c in frame.columns if c not in (id_column, time_column, label)]
    if not channels:
        raise ValueError(f"{where}: no channel columns besides {id_column!r}, {time_column!r}")
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for c in channels:  # pandas' test: a text column may be pandas' StringDtype, which numpy cannot interpret
        column = frame[c]
        if is_numeric_dtype(column) and not is_bool_dtype(column):
            continue
        offending = np.flatnonzero((pd.to_numeric(column, errors="coerce").isna() & column.notna()).to_numpy())
        detail = f" (data row {offending[0] + 1} holds {column.iloc[offending[0]]!r})" if len(offending) else ""
        raise ValueError(f"{where}: channel column {c!r} is not numeric{detail}; if it holds each series' class, "
                         "name it as the label column (--label / label=)")  # fmt: skip
    for c in (id_column, time_column, label):  # groupby would drop rows without an id; a missing label is no class
        empty = np.flatnonzero(frame[c].isna().to_numpy()) if c is not None else np.zeros(0, dtype=np.int64)
        if len(empty):
            raise ValueError(f"{where}: column {c!r} is empty in data row {empty[0] + 1} ({len(empty)} row(s) in "
                             "all); every row needs its series id, time and label")  # fmt: skip
    times, regular = time_values(frame[time_column], time_column, where)
    order = np.lexsort((times, pd.factorize(frame[id_column], sort=True)[0]))  # by id (as pandas sorts), then time
    series, labels, ids, uneven = [], [], [], []
    for key, group in frame.iloc[order].reset_index(drop=True).groupby(id_column, sort=False):
        ids.append(str(key))
        if group[time_column].duplicated().any():
            raise ValueError(f"{where}: series {key!r} has repeated {time_column!r} values")
        rows = _as_series(group[channels].to_numpy(np.float64), f"{where}: series {key!r}")
        steps, even = on_time_axis(times[order][group.index.to_numpy()], rows, regular)
        series.append(steps)
        uneven += [] if even else [str(key)]
        if label is not None:
            values = group[label].unique()
            if len(values) != 1:
                raise ValueError(f"{where}: series {key!r} has {len(values)} different {label!r} values")
            labels.append(values[0])
    warn_uneven(uneven, where, time_column)
    codes, classes = _encode_labels(labels if label is not None else None)
    return SeriesSet(series, where, codes, classes, channels=tuple(str(c) for c in channels), ids=tuple(ids))


LONG_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _series_suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".csv.gz") else path.suffix.lower()


def is_long_format(source: str | Path) -> bool:
    """True for a long-format series file (one row per series id and time step: CSV / Parquet)."""
    return not str(source).startswith("builtin:") and _series_suffix(Path(source)) in LONG_SUFFIXES


def load_series(source: str, *, id_column: str = "id", time_column: str = "time", label: str | None = None,
                pickle: bool = False, label_optional: bool = False) -> SeriesSet:  # fmt: skip
    """Read ``builtin:NAME`` or a ``.npy`` / ``.npz`` / ``.csv`` / ``.parquet`` file (see the module doc).

    ``id_column``, ``time_column``, ``label``: the long-format columns (CSV / Parquet); ``label_optional``:
    a file without the ``label`` column is read without labels (new series to classify). ``pickle=True``
    allows an object ``.npy`` (object arrays are stored with pickle: only for files you trust).
    """
    spec = parse_data_spec(source, known_builtins=tuple(BUILTINS))
    if label is not None and not is_long_format(source):
        raise ValueError(f"a label column ({label!r}) is for long-format .csv / .parquet series, not {source} "
                         "(an .npz carries its classes in a 'labels' array; built-ins carry their own)")  # fmt: skip
    if spec.builtin is not None:
        return _builtin(spec.builtin)
    path = spec.path
    assert path is not None
    suffix = _series_suffix(path)
    if suffix in (".npy", ".npz"):
        try:
            return _read_numpy(path)
        except ValueError as err:
            if "allow_pickle" not in str(err):
                raise
            if not pickle or suffix == ".npz":
                raise ValueError(
                    f"{path}: holds an object array (stored with pickle), which masklab does not unpickle from "
                    "the command line; save padded values + lengths in .npz (or, in Python, pass "
                    "load_series(..., pickle=True) for a file you trust)"
                ) from None
            return _read_object_npy(path)
    if suffix in LONG_SUFFIXES:
        frame = read_long_file(path, "csv" in suffix)
        if label_optional and label is not None and label not in frame.columns:
            label = None
        return read_long_frame(frame, id_column=id_column, time_column=time_column, label=label, where=str(path))
    raise ValueError(f"--data {path}: unknown series format {suffix!r} (use .npy, .npz, .csv or .parquet)")


# ------------------------------------------------------------------------------------------------ batches
@dataclass
class SeriesBatch:
    """values float (B, T, C) (0 where not observed / padded); padding bool (B, T) True = padded step;
    observed bool (B, T, C) True = real observed value; labels long (B,) or None."""

    values: torch.Tensor
    padding: torch.Tensor
    observed: torch.Tensor
    labels: torch.Tensor | None = None


def collate(series: list[np.ndarray], labels: np.ndarray | None = None, *, length: int | None = None) -> SeriesBatch:
    """Pad ``series`` (each ``(T_i, C)``, NaN = not observed) to ``length`` (default: the longest)."""
    longest = max(len(s) for s in series)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"length={length} is shorter than the longest series ({longest})")
    channels = series[0].shape[1]
    values = np.zeros((len(series), length, channels), dtype=np.float32)
    observed = np.zeros((len(series), length, channels), dtype=bool)
    padding = np.ones((len(series), length), dtype=bool)
    for i, s in enumerate(series):
        seen = ~np.isnan(s)
        values[i, : len(s)] = np.where(seen, s, 0.0)
        observed[i, : len(s)] = seen
        padding[i, : len(s)] = False
    y = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    return SeriesBatch(torch.from_numpy(values), torch.from_numpy(padding), torch.from_numpy(observed), y)


class SeriesTrainData:
    """A :class:`masklab.train.TrainData` over a :class:`SeriesSet`: each batch padded to its longest series.

    ``augment`` transforms each unpadded series first (:class:`~masklab.data.series_augment.SeriesAugment`,
    a random time shift); ``max_length`` then crops longer series to a random window of that
    many steps. Both draw with the loop's generator; padding is added after them, to the new lengths."""

    def __init__(self, data: SeriesSet, *, max_length: int | None = None, with_labels: bool = False,
                 augment: SeriesAugment | None = None) -> None:  # fmt: skip
        if with_labels and data.labels is None:
            raise ValueError(f"{data.name}: has no labels to train a classifier on")
        self.data = data
        self.max_length = max_length
        self.with_labels = with_labels
        self.augment = augment if augment is not None and augment.enabled else None

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> SeriesBatch:
        picked = [self.data.series[int(i)] for i in indices]
        if self.augment is not None:
            picked = [self.augment(s, generator) for s in picked]
        if self.max_length is not None:
            crops = []
            for s in picked:
                start = 0
                if len(s) > self.max_length:
                    start = int(torch.randint(len(s) - self.max_length + 1, (1,), generator=generator))
                crops.append(s[start : start + self.max_length])
            picked = crops
        labels = None
        if self.with_labels and self.data.labels is not None:
            labels = self.data.labels[indices.numpy()]
        return collate(picked, labels)
