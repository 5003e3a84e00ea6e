"""The series panel's work: one series (from an uploaded file, or a held-out example of the run's own data) with
some patches hidden and reconstructed, its forecast ``horizon`` steps past its end, and its anomaly score per
time step. The numbers come from :mod:`masklab.recipes.series`; the pictures from :mod:`masklab.viz.series`.

An upload is written to a private temporary file named by the server (the client never names a path) and read
as ``masklab forecast --data FILE`` reads it (:func:`~masklab.recipes.series.run_data`: ``.npy``, ``.npz``,
long ``.csv`` / ``.csv.gz`` / ``.parquet``, the run's label column, the run's channel count), with the label
column read from the run at load (``run.info``), not from its folder again. A file's size once
decoded is checked from its headers before it is read (a small compressed file can expand to gigabytes).

Arrays go back as lists, ``(T, C)`` time-major, ``null`` for a step that was not observed (NaN).
"""

from __future__ import annotations

import dataclasses
import gzip
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from masklab.data.series import SeriesSet
from masklab.serve.errors import InputError, check_example
from masklab.serve.images import data_url, written_png
from masklab.serve.runs import LoadedRun

SUFFIXES = (".npy", ".npz", ".csv", ".csv.gz", ".parquet", ".pq")
MAX_VALUES = 4_000_000  # numbers in an uploaded series file once decoded
MAX_HORIZON = 10_000  # steps a forecast may ask for (the model's own limit is usually lower)
MASKINGS = ("random", "tail")
PICTURE_CHANNELS = 3  # channels drawn in the reconstruction picture
TOP_STEPS = 10  # highest-scoring steps listed by the anomaly endpoint


def covered_steps(run: LoadedRun) -> int:
    """The longest series (history + horizon for a forecast) the model's position table covers."""
    cfg = run.model.config
    return cfg.patch_len + (cfg.max_patches - 1) * cfg.stride


def details(run: LoadedRun) -> dict:
    """What the page needs to draw a series panel (the horizon the run recorded, as read at load)."""
    cfg = run.model.config
    shown = [] if run.examples is None else zip(run.examples.names(), run.examples.lengths.tolist(), strict=True)
    horizon = run.info.get("horizon") or 2 * cfg.patch_len
    return {"channels": cfg.channels, "patch_len": cfg.patch_len, "stride": cfg.stride,
            "max_steps": covered_steps(run), "mask_ratio": cfg.mask_ratio, "mask_kind": cfg.mask_kind,
            "horizon": int(horizon), "examples": [{"name": n, "length": t} for n, t in shown]}  # fmt: skip


# ------------------------------------------------------------------------------------------------- input
def _suffix(filename: str) -> str:
    name = filename.lower()
    return ".csv.gz" if name.endswith(".csv.gz") else Path(name).suffix


def _npy_values(handle) -> int:
    """Numbers an ``.npy`` stream holds, from its header (``ValueError`` when it is not one)."""
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read is None:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _, _ = read(handle)
    return int(np.prod(shape, dtype=np.int64))


def _decoded_values(path: Path, suffix: str) -> int:
    """How many numbers (or, for a compressed CSV, bytes / 4) the file decodes to, read from its headers."""
    if suffix == ".npy":
        with open(path, "rb") as handle:
            return _npy_values(handle)
    if suffix == ".npz":
        with zipfile.ZipFile(path) as archive:
            total = 0
            for member in archive.namelist():
                with archive.open(member) as handle:
                    total += _npy_values(handle)
            return total
    if suffix == ".csv.gz":
        with gzip.open(path, "rb") as handle:
            size = 0
            while chunk := handle.read(1 << 20):
                size += len(chunk)
                if size > 4 * MAX_VALUES:
                    break
            return size // 4
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        return int(meta.num_rows) * int(meta.num_columns)
    return 0  # a plain CSV is no bigger than the request body


def read_upload(run: LoadedRun, data: bytes, filename: str) -> SeriesSet:
    """The series of an uploaded file (field ``file``), checked against the run (its channels)."""
    from masklab.data.series import is_long_format, load_series
    from masklab.recipes.series import check_channels

    shown = Path(filename or "upload").name
    suffix = _suffix(shown)
    if suffix not in SUFFIXES:
        raise InputError("file", f"not a series file: expected .npy, .npz, .csv, .csv.gz or .parquet, got {shown!r}",
                         415)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="masklab-serve-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            values = _decoded_values(path, suffix)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise InputError("file", f"not a series file: {shown} is not a valid {suffix} file ({err})", 415) from None
        if values > MAX_VALUES:
            raise InputError("file", f"{shown} decodes to more than {MAX_VALUES:,} values; send a smaller file", 413)
        try:
            label = run.info.get("label") if is_long_format(path) else None  # as run_data reads a file
            series = load_series(str(path), label=label, label_optional=True)
            check_channels(series, run.model.config.channels, "this run")
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, ImportError) as err:
            if isinstance(err, ImportError):
                raise InputError("file", f"reading {suffix} needs {err.name or 'a missing package'}", 415) from None
            message = str(err).replace(str(path), shown).replace(str(run.path), "this run")
            raise InputError("file", f"cannot read {shown} as series: {message}") from None
    return dataclasses.replace(series, name=shown)


def choose(run: LoadedRun, upload: SeriesSet | None, example: int | None, index: int) -> tuple[SeriesSet, int]:
    """One series, as a one-series set named after it: series ``index`` of the upload, or a built-in example;
    and how many series its source holds."""
    if (upload is None) == (example is None):
        raise InputError("file", "give either a series file ('file') or a built-in example index ('example')")
    if upload is None:
        source, index = run.examples, check_example(run.examples, example)
    else:
        source = upload
        if not 0 <= index < len(source):
            raise InputError("index", f"series {index} is out of range: {source.name} holds {len(source)} series "
                             f"(0 to {len(source) - 1})")  # fmt: skip
    one = source.subset([index])
    one = dataclasses.replace(one, ids=(source.names()[index],))
    length, covered = int(one.lengths[0]), covered_steps(run)
    if length > covered:
        raise InputError("file", f"series {one.names()[0]} has {length} steps; this model covers at most {covered} "
                         "(crop it)")  # fmt: skip
    return one, len(source)


# ----------------------------------------------------------------------------------------------- results
def _rows(values: np.ndarray) -> list[list[float | None]]:
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(values, dtype=np.float64)]


def _png(draw, *args, **kwargs) -> str:
    """A ``viz.series`` picture as a PNG data URL (it is drawn to a private temporary file)."""
    return data_url(written_png(lambda path: draw(*args, path=path, **kwargs)))


def summary(one: SeriesSet, count: int) -> dict:
    """The series itself: its name, how many series its source holds, its length and values."""
    return {"name": one.names()[0], "count": count, "length": int(one.lengths[0]), "values": _rows(one.series[0])}


def reconstruct(run: LoadedRun, one: SeriesSet, count: int, masking: str, seed: int) -> dict:
    """Hide patches as the model was trained to (``random``, or the ``tail``), seeded, and reconstruct them
    (:func:`masklab.recipes.series.hide_and_reconstruct`), for one series."""
    from masklab.recipes.series import hide_and_reconstruct
    from masklab.viz.series import plot_reconstructions

    if masking not in MASKINGS:
        raise InputError("masking", f"expected one of {', '.join(MASKINGS)}, got {masking!r}")
    hiddens, recons = hide_and_reconstruct(run.model, one, seed=seed, masking=masking)
    hidden, recon = hiddens[0], recons[0]  # (T, C)
    x = one.series[0]
    scored = hidden & ~np.isnan(x)
    mse = float(np.mean((recon[scored] - x[scored]) ** 2)) if scored.any() else None
    picture = _png(plot_reconstructions, [x], [hidden], [recon], titles=[one.names()[0]],
                   channels=PICTURE_CHANNELS)  # fmt: skip
    return {**summary(one, count), "masking": masking, "seed": seed, "hidden_fraction": float(hidden.mean()),
            "hidden": ["".join("1" if h else "0" for h in hidden[:, c]) for c in range(hidden.shape[1])],
            "reconstruction": _rows(recon), "mse_hidden": mse, "image": picture}  # fmt: skip


def check_horizon(run: LoadedRun, one: SeriesSet, horizon: int) -> None:
    """``horizon`` (field ``horizon``) in 1..what the model covers past this series' end."""
    length = int(one.lengths[0])
    room = covered_steps(run) - length
    if horizon < 1:
        raise InputError("horizon", f"the horizon must be >= 1 step, got {horizon}")
    if horizon > min(room, MAX_HORIZON):
        why = (f"this series has {length} steps and the model covers {covered_steps(run)} in all, so at most "
               f"{room} can be forecast" if room <= MAX_HORIZON else f"at most {MAX_HORIZON} steps")  # fmt: skip
        raise InputError("horizon", f"a horizon of {horizon} steps is too long: {why}")


def forecast(run: LoadedRun, one: SeriesSet, count: int, horizon: int, channel: int) -> dict:
    """:func:`masklab.recipes.series.forecast` of one series, with the horizon shaded in the picture."""
    from masklab.recipes.series import forecast as forecast_series
    from masklab.viz.series import plot_forecasts

    check_horizon(run, one, horizon)
    if not 0 <= channel < one.num_channels:
        raise InputError("channel", f"channel {channel} is out of range: the series has {one.num_channels} (0 to "
                         f"{one.num_channels - 1})")  # fmt: skip
    pred = forecast_series(run.model, one, horizon)[0]  # (H, C)
    picture = _png(plot_forecasts, [one.series[0]], [pred], titles=[f"{one.names()[0]}, channel {channel}"],
                   channel=channel)  # fmt: skip
    return {**summary(one, count), "horizon": horizon, "channel": channel, "forecast": _rows(pred), "image": picture}


def anomalies(run: LoadedRun, one: SeriesSet, count: int) -> dict:
    """:func:`masklab.recipes.series.anomaly_scores` of one series: its score and one per time step."""
    from masklab.recipes.series import anomaly_scores

    per_series, per_step = anomaly_scores(run.model, one)
    steps = np.asarray(per_step[0], dtype=np.float64)  # (T,)
    order = [int(i) for i in np.argsort(-np.nan_to_num(steps, nan=-np.inf), kind="stable")[:TOP_STEPS]]
    return {**summary(one, count), "score": float(per_series[0]),
            "per_step": [None if np.isnan(v) else float(v) for v in steps],
            "top_steps": [i for i in order if np.isfinite(steps[i])]}  # fmt: skip
