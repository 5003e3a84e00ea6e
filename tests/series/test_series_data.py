"""Series readers: every source gives the same series; NaN is 'not observed', never zero; bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklab.data.series import collate, load_series, read_ts

pytest.importorskip("sktime")


def _series() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = [rng.normal(size=(n, 2)).astype(np.float32) for n in (5, 9, 3)]
    out[1][4, 0] = np.nan
    return out


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_npz_padded_with_lengths_and_labels(tmp_path) -> None:
    series = _series()
    padded = np.full((3, 9, 2), 123.0, dtype=np.float32)  # the padding value must never leak in
    for i, s in enumerate(series):
        padded[i, : len(s)] = s
    np.savez(tmp_path / "s.npz", values=padded, lengths=[5, 9, 3], labels=["b", "a", "b"])
    data = load_series(str(tmp_path / "s.npz"))
    _same(data.series, series)
    assert data.classes == ("a", "b") and data.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("lengths", [np.array([3, 9]), np.array([3.5, 2.0]), np.array([3]), np.array([0, 2])])
def test_bad_npz_lengths_are_named_as_lengths(tmp_path, lengths) -> None:
    # The lengths array is named (it was reported as FILE:values), and 3.5 is refused, not cut to 3.
    path = tmp_path / "s.npz"
    np.savez(path, values=np.zeros((2, 4, 1), dtype=np.float32), lengths=lengths)
    with pytest.raises(ValueError, match=r"s\.npz:lengths: expected \(2,\) whole numbers in \[1, 4\]"):
        load_series(str(path))
    np.savez(path, values=np.zeros((2, 4, 1), dtype=np.float32), lengths=np.array([3.0, 4.0]))
    assert [len(s) for s in load_series(str(path)).series] == [3, 4]  # whole floats are fine


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"length": [3, 4]}, r"unknown array\(s\) \['length'\] in the \.npz; it may hold values, lengths, labels, ids"),
        ({"labels": [["a"], ["b"]]}, r"s\.npz:labels: expected shape \(2,\), one per series, got \(2, 1\)"),
        ({"labels": ["a", "b", "c"]}, r"s\.npz:labels: expected shape \(2,\), one per series, got \(3,\)"),
        ({"ids": [["x", "y"], ["z", "w"]]}, r"s\.npz:ids: expected shape \(2,\), one per series, got \(2, 2\)"),
        ({"ids": ["x", "x"]}, r"s\.npz:ids: the id 'x' names more than one series"),
    ],
)
def test_npz_arrays_beyond_values_are_checked_not_ignored(tmp_path, arrays, message) -> None:
    # A misspelt 'lengths' was ignored, so the padding became data; 2-D or repeated ids named outputs wrongly.
    path = tmp_path / "s.npz"
    np.savez(path, values=np.zeros((2, 4, 1), dtype=np.float32), **{k: np.array(v) for k, v in arrays.items()})
    with pytest.raises(ValueError, match=message):
        load_series(str(path))


def test_a_padded_array_without_lengths_says_its_unobserved_ends_are_not_padding(tmp_path) -> None:
    padded = np.zeros((3, 6, 1), dtype=np.float32)
    padded[1, 4:] = np.nan  # padding written as NaN, but no lengths given: NaN means 'not observed'
    np.save(tmp_path / "s.npy", padded)
    with pytest.warns(UserWarning, match=r"1 of 3 series end in steps where nothing is observed \(e\.g\. series 1"):
        data = load_series(str(tmp_path / "s.npy"))
    assert [len(s) for s in data.series] == [6, 6, 6]  # read as documented, and said
    np.savez(tmp_path / "s.npz", values=padded, lengths=[6, 4, 6])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [len(s) for s in load_series(str(tmp_path / "s.npz")).series] == [6, 4, 6]


def test_object_npy_needs_explicit_pickle(tmp_path) -> None:
    series = _series()
    array = np.empty(3, dtype=object)
    array[:] = series
    np.save(tmp_path / "s.npy", array, allow_pickle=True)
    with pytest.raises(ValueError, match=r"does not unpickle from the command line; save padded values \+ lengths"):
        load_series(str(tmp_path / "s.npy"))
    _same(load_series(str(tmp_path / "s.npy"), pickle=True).series, series)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_format(tmp_path, suffix: str) -> None:
    pd = pytest.importorskip("pandas")
    series = _series()
    rows = [
        dict(id=f"s{i}", time=t, a=s[t, 0], b=s[t, 1], y=i % 2) for i, s in enumerate(series) for t in range(len(s))
    ]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must come from id and time
    path = tmp_path / f"s{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = load_series(str(path), label="y")
    _same(data.series, series)
    assert data.channels == ("a", "b") and data.labels.tolist() == [0, 1, 0]
    assert data.names() == ["s0", "s1", "s2"] and data.subset([2, 0]).ids == ("s2", "s0")  # outputs name them
    with pytest.raises(ValueError, match="'when'"):
        load_series(str(path), time_column="when")
    # A text cell in a channel: named with its row (pandas 3 reads the column as StringDtype, on which a numpy
    # dtype test raised TypeError: a traceback from the CLI).
    frame = frame.sort_values(["id", "time"]).astype({"a": str})
    frame.iloc[4, frame.columns.get_loc("a")] = "n/a?"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    with pytest.raises(ValueError, match=r"channel column 'a' is not numeric \(data row 5 holds 'n/a\?'\)"):
        load_series(str(path), label="y")


def test_long_rows_without_an_id_or_a_label_are_refused_not_dropped(tmp_path) -> None:
    pd = pytest.importorskip("pandas")
    rows = [dict(id=f"s{i}", time=t, a=float(t), y="up" if i else "down") for i in range(3) for t in range(4)]
    path = tmp_path / "long.csv"
    for column, row in (("id", 2), ("y", 6)):
        frame = pd.DataFrame(rows)
        frame.loc[row - 1, column] = None
        frame.to_csv(path, index=False)
        with pytest.raises(ValueError, match=rf"column '{column}' is empty in data row {row} \(1 row\(s\) in all\)"):
            load_series(str(path), label="y")


def test_values_beyond_float32_are_refused(tmp_path) -> None:
    path = tmp_path / "big.npz"
    values = np.zeros((2, 5, 1))
    values[1, 2, 0] = 1e39  # finite in float64, inf in the model's float32
    np.savez(path, values=values, lengths=np.array([5, 5]))
    with pytest.raises(ValueError, match="beyond float32's range"):
        load_series(str(path))


def test_a_series_with_no_observed_value_is_refused(tmp_path) -> None:
    path = tmp_path / "nan.npy"
    values = np.zeros((3, 6, 2), dtype=np.float32)
    values[1] = np.nan  # predict and embed gave it a confident class and finite features
    np.save(path, values)
    with pytest.raises(ValueError, match=r"1 series have no observed value \(all NaN\), e.g. series \[1\]"):
        load_series(str(path))


def test_impute_refuses_to_overwrite_its_input(tmp_path) -> None:
    from masklab.recipes.series_tasks import impute_series

    path = tmp_path / "s.npz"
    np.savez(path, values=np.zeros((2, 5, 1), dtype=np.float32))
    with pytest.raises(ValueError, match="is the input file; impute never modifies its input"):
        impute_series(tmp_path / "no-run-needed", path, path)  # refused before the run is read


def test_collate_marks_padding_and_missing() -> None:
    batch = collate(_series(), np.array([0, 1, 0]))
    assert batch.values.shape == (3, 9, 2)
    assert batch.padding.sum(dim=1).tolist() == [4, 0, 6]
    assert not bool(batch.observed[1, 4, 0]) and bool(batch.observed[1, 4, 1])
    assert not bool(batch.observed[batch.padding].any())
    assert not bool(batch.values.isnan().any())
    assert batch.labels.dtype == torch.long


def test_builtins_read_offline_from_the_sktime_wheel() -> None:
    vowels = load_series("builtin:japanese-vowels")
    assert len(vowels) == 640 and vowels.num_channels == 12
    assert (vowels.lengths.min(), vowels.lengths.max()) == (7, 29)
    assert len(vowels.part("train")) == 270 and len(vowels.classes) == 9
    plaid = load_series("builtin:plaid")
    assert plaid.num_channels == 1 and (plaid.lengths.min(), plaid.lengths.max()) == (100, 1344)
    assert len(plaid.classes) == 11


def test_ts_reader_missing_values_and_errors(tmp_path) -> None:
    path = tmp_path / "x.ts"
    path.write_text("@problemName x\n@data\n1,2,?:4,5,6:cat\n1,2:3,4:dog\n")
    series, labels = read_ts(path)
    assert labels == ["cat", "dog"] and np.isnan(series[0][2, 0]) and series[0].shape == (3, 2)
    path.write_text("@data\n1,2,x:cat\n")
    with pytest.raises(ValueError, match=r"x.ts:2"):
        read_ts(path)
    with pytest.raises(ValueError, match="unknown built-in"):
        load_series("builtin:nope")


def test_forecast_count_must_be_positive(tmp_path) -> None:
    from masklab.recipes.series_tasks import forecast_series

    with pytest.raises(ValueError, match=r"--count must be >= 1 \(series in the plot\), got 0"):
        forecast_series(tmp_path / "no-run-needed", 3, count=0)  # refused before the run is read


@pytest.mark.parametrize(
    "values",
    [
        np.zeros((2, 20), dtype=[("a", "f4"), ("b", "f4")]),  # records: a TypeError traceback (HTTP 500 in serve)
        np.ones((2, 20, 3), dtype=bool),  # these three were silently turned into numbers
        np.arange(40).astype("datetime64[s]").reshape(2, 20),
        np.arange(40).astype("timedelta64[s]").reshape(2, 20),
        np.full((2, 20), "a"),  # a message that named no file
    ],
)
def test_values_that_are_not_numbers_are_refused_naming_the_file(tmp_path, values) -> None:
    path = tmp_path / "s.npy"
    np.save(path, values)
    with pytest.raises(ValueError, match=r"s\.npy\[0\]: .* values; a series holds numbers"):
        load_series(str(path))
