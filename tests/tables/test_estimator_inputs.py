"""What the estimators accept and return: date / duration columns are refused by name, the imputer's output
dtypes follow the fitted column (float32 stays float32, whole-number columns int64 whatever the batch,
nullable stays nullable), a bool array comes back as bools, and explain's expected values are what the
imputer would fill."""

import numpy as np
import pandas as pd
import pytest

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer
from masklab.tokenizers.table import infer_schema

FAST = dict(preset="table-tiny", steps=5, batch_size=16)


def table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


# ------------------------------------------------------------------------------------ dates, durations
DATES = {
    "ns": lambda n: pd.Series(pd.date_range("2020-01-01", periods=n, freq="D")).astype("datetime64[ns]"),
    "us": lambda n: pd.Series(pd.date_range("2020-01-01", periods=n, freq="D")).astype("datetime64[us]"),
    "tz": lambda n: pd.Series(pd.date_range("2020-01-01", periods=n, freq="D", tz="UTC")),
    "nat": lambda n: pd.Series(pd.date_range("2020-01-01", periods=n, freq="D")).where(np.arange(n) % 5 > 0),
    "delta": lambda n: pd.Series(pd.to_timedelta(np.arange(n), unit="h")),
    "period": lambda n: pd.Series(pd.period_range("2020-01", periods=n, freq="M")),
}


@pytest.mark.parametrize("kind", sorted(DATES))
def test_date_and_duration_columns_are_refused_by_name(kind):
    frame = table().assign(when=DATES[kind](30), also=DATES[kind](30))
    with pytest.raises(ValueError, match=r"\['when', 'also'\].*--exclude.*convert") as err:
        infer_schema(frame)
    assert "drop" in str(err.value)
    for cls in (MaskedImputer, MaskedAnomalyDetector):
        with pytest.raises(ValueError, match="'when'"):
            cls(**FAST).fit(frame)


def test_a_date_column_given_where_numbers_were_fitted_is_refused():
    imputer = MaskedImputer(**FAST).fit(table().assign(when=np.random.default_rng(1).normal(size=30)))
    with pytest.raises(ValueError, match="'when'"):
        imputer.transform(table().assign(when=DATES["nat"](30)))


# ---------------------------------------------------------------------------------- imputer dtypes
def test_float32_column_is_filled_in_float32():
    frame = table().astype(np.float32)
    frame.loc[[0, 3], "a"] = np.nan
    out = MaskedImputer(**FAST).fit(frame).transform(frame)
    assert out.dtypes.tolist() == [np.float32, np.float32]
    assert out["a"].notna().all()
    pd.testing.assert_frame_equal(out.loc[out.index > 3], frame.loc[frame.index > 3])


def test_bool_array_comes_back_as_bools():
    x = np.random.default_rng(0).random((30, 3)) > 0.5
    out = MaskedImputer(**FAST).fit(x).transform(x)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, x)


def whole_numbers(n=30, seed=0):
    rng = np.random.default_rng(seed)
    frame = table(n, seed).assign(k=rng.integers(0, 9, size=n).astype(float))
    frame.loc[[2, 5], "k"] = np.nan
    return frame


def test_output_dtype_does_not_depend_on_the_batch():
    frame = whole_numbers()
    imputer = MaskedImputer(**FAST).fit(frame)
    with_missing, without = imputer.transform(frame.iloc[:10]), imputer.transform(frame.iloc[10:])
    assert with_missing.dtypes.to_dict() == without.dtypes.to_dict() == {"a": float, "b": float, "k": np.int64}
    np.testing.assert_array_equal(without["k"].to_numpy(), frame["k"].iloc[10:].to_numpy())
    assert (with_missing["k"] == with_missing["k"].round()).all()


def test_nullable_columns_stay_nullable():
    frame = whole_numbers().astype({"k": "Int64", "a": "Float64"})
    frame.loc[[0, 7], "a"] = pd.NA
    imputer = MaskedImputer(**FAST).fit(frame)
    for rows in (frame.iloc[:10], frame.iloc[10:]):
        out = imputer.transform(rows)
        assert out.dtypes.to_dict() == {"a": pd.Float64Dtype(), "b": np.float64, "k": pd.Int64Dtype()}
        assert out.notna().all().all()
    observed = frame["k"].notna()
    pd.testing.assert_series_equal(imputer.transform(frame)["k"][observed], frame["k"][observed])


# ------------------------------------------------------------------------------------------- explain
def test_explain_expects_what_the_imputer_would_fill():
    rng = np.random.default_rng(0)
    frame = table(40).assign(k=rng.integers(0, 9, size=40), flag=rng.random(40) > 0.5)
    detector = MaskedAnomalyDetector(**FAST).fit(frame)
    out = detector.explain(frame)
    ints = out.loc[out["column"] == "k", "expected"].astype(float)
    assert (ints == ints.round()).all()
    flags = out.loc[out["column"] == "flag"]
    for values in (flags["expected"], flags["observed"]):  # bools (Python's or numpy's), not the strings
        assert all(isinstance(v, (bool, np.bool_)) for v in values)
