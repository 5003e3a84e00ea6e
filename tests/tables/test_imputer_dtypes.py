"""MaskedImputer fills with the column's own value type and dtype (bools, object ints, Categorical, string), and
both estimators fitted on an array take a DataFrame by position (scikit-learn's convention)."""

import numpy as np
import pandas as pd
import pytest
import torch
from table_helpers import FAST

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer
from masklab.models.table.model import impute_cells
from masklab.tokenizers.table import decode_columns, encode_frame, infer_schema


def predicted_keys(imputer, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The category strings the model predicts for every cell of ``frame`` (what transform converts)."""
    encoded = encode_frame(frame, imputer.schema_)
    no_patterns = torch.zeros(0, len(imputer.schema_.columns), dtype=torch.bool)
    numeric, categories = impute_cells(imputer.model_, encoded.values, encoded.categories, encoded.missing, no_patterns)
    return decode_columns(numeric, categories, imputer.schema_)


def expected_fill(frame: pd.DataFrame, column: str, rows, keys: dict[str, np.ndarray], convert) -> pd.DataFrame:
    expected = frame.copy()
    for row in rows:
        expected.loc[row, column] = convert(keys[column][row])
    return expected


def bool_table(n=40):
    x = np.random.default_rng(0).normal(size=n)
    return pd.DataFrame({"x": x, "flag": x > 0})


def test_bool_column_is_filled_with_bools():
    imputer = MaskedImputer(**FAST).fit(bool_table())
    test = bool_table().head(6).astype({"flag": object})
    test.loc[[1, 4], "flag"] = None
    out = imputer.transform(test)
    expected = expected_fill(test, "flag", [1, 4], predicted_keys(imputer, test), lambda key: key == "True")
    pd.testing.assert_frame_equal(out, expected)
    assert [type(v) for v in out["flag"]] == [bool] * 6
    assert out["flag"].astype(bool).tolist() == expected["flag"].tolist()

    single = MaskedImputer(**FAST).fit(pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "flag": [False] * 4}))
    lone = pd.DataFrame({"x": [1.5], "flag": pd.Series([None], dtype=object)})  # no observed value to copy
    pd.testing.assert_frame_equal(single.transform(lone), pd.DataFrame({"x": [1.5], "flag": [False]}, dtype=object)
                                  .astype({"x": float}))  # fmt: skip


def test_object_int_categories_are_filled_with_ints(tmp_path, no_pickle):
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=40), "k": pd.Series(rng.integers(1, 4, size=40).tolist(), dtype=object)})
    train.loc[[2, 7], "k"] = None
    imputer = MaskedImputer(**FAST, categorical=["k"]).fit(train)
    assert imputer.schema_.columns[1].categories == ("1", "2", "3")
    test = pd.DataFrame({"x": [0.1, -0.5, 2.0], "k": pd.Series([None, None, None], dtype=object)})
    expected = expected_fill(test, "k", [0, 1, 2], predicted_keys(imputer, test), int)
    pd.testing.assert_frame_equal(imputer.transform(test), expected)
    assert [type(v) for v in imputer.transform(test)["k"]] == [int] * 3
    loaded = MaskedImputer.load(imputer.save(tmp_path / "imputer"))  # the values survive save / load (JSON)
    pd.testing.assert_frame_equal(loaded.transform(test), expected)


def test_bool_column_with_missing_cells_is_categorical():
    train = bool_table().astype({"flag": object})
    train.loc[[1, 5], "flag"] = None
    schema = infer_schema(train)
    assert [(c.name, c.kind, c.categories) for c in schema.columns] == [
        ("x", "numeric", ()),
        ("flag", "categorical", ("False", "True")),
    ]
    nullable = infer_schema(bool_table().astype({"flag": "boolean"}))
    assert (nullable.columns[1].kind, nullable.columns[1].categories) == ("categorical", ("False", "True"))

    imputer = MaskedImputer(**FAST).fit(train)
    head = train.head(6)
    out = imputer.transform(head)
    expected = expected_fill(head, "flag", [1, 5], predicted_keys(imputer, head), lambda key: key == "True")
    pd.testing.assert_frame_equal(out, expected)  # True / None / True / True ...: only the None changed
    assert [type(v) for v in out["flag"]] == [bool] * 6


@pytest.mark.parametrize("text_dtype", ["string", "str"])
def test_categorical_string_and_boolean_dtypes_are_kept(text_dtype):
    x = np.random.default_rng(2).normal(size=40)
    train = pd.DataFrame(
        {
            "x": x,
            "k": pd.Categorical(np.where(x > 0, "p", "n"), categories=["p", "n", "z"]),
            "s": pd.Series(np.where(x > 0.5, "u", "v"), dtype=text_dtype),
            "b": pd.Series(x < -0.5, dtype="boolean"),
        }
    )
    train.loc[[2, 3], "k"] = None
    train.loc[[4], "s"] = None
    train.loc[[5, 6], "b"] = None
    imputer = MaskedImputer(**FAST).fit(train)
    out = imputer.transform(train)
    keys = predicted_keys(imputer, train)
    expected = expected_fill(train, "k", [2, 3], keys, str)
    expected = expected_fill(expected, "s", [4], keys, str)
    expected = expected_fill(expected, "b", [5, 6], keys, lambda key: key == "True")
    assert out.dtypes.to_dict() == train.dtypes.to_dict()
    pd.testing.assert_frame_equal(out, expected)


def test_estimators_fitted_on_an_array_take_a_frame_by_position():
    x = np.random.default_rng(3).normal(size=(40, 3))
    x_miss = np.where(np.random.default_rng(4).random(x.shape) < 0.2, np.nan, x)
    frame = pd.DataFrame(x_miss, columns=list("abc"))
    imputer = MaskedImputer(**FAST).fit(x_miss)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        out = imputer.transform(frame)
    pd.testing.assert_frame_equal(out, pd.DataFrame(imputer.transform(x_miss), columns=list("abc")))
    with pytest.warns(UserWarning, match="fitted without feature names"), pytest.raises(ValueError, match="3 features"):
        imputer.transform(frame[["a", "b"]])

    detector = MaskedAnomalyDetector(**FAST).fit(x)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        scores = detector.anomaly_score(frame)
    np.testing.assert_array_equal(scores, detector.anomaly_score(x_miss))
    with pytest.warns(UserWarning, match="fitted without feature names"):
        explained = detector.explain(frame, top=2)
    pd.testing.assert_frame_equal(explained, detector.explain(x_miss, top=2))  # columns named as in fit: x0..x2
    assert set(explained["column"]) <= {"x0", "x1", "x2"}


def test_a_model_without_recorded_values_reads_an_unseen_category_as_the_column_s_type():
    # A run of `masklab pretrain table` records no category values: a bool column whose cells here are all True
    # got the string 'False' beside its bools (a Parquet output then failed); ints likewise.
    rng = np.random.default_rng(2)
    train = pd.DataFrame({"x": rng.normal(size=40), "flag": rng.normal(size=40) > 0,
                          "k": pd.Series(rng.integers(1, 4, size=40).tolist(), dtype=object)})  # fmt: skip
    imputer = MaskedImputer(**FAST, categorical=["k"]).fit(train)
    del imputer.category_values_  # as a run loaded from its folder
    test = pd.DataFrame({"x": [-3.0, 0.0, 3.0, -2.0], "flag": pd.Series([True, None, True, None], dtype=object),
                         "k": pd.Series([3, None, 3, None], dtype=object)})  # fmt: skip
    keys = predicted_keys(imputer, test)
    out = imputer.transform(test)
    assert [type(v) for v in out["flag"]] == [bool] * 4 and [type(v) for v in out["k"]] == [int] * 4
    assert out["flag"].tolist() == [True, keys["flag"][1] == "True", True, keys["flag"][3] == "True"]
    assert out["k"].tolist() == [3, int(keys["k"][1]), 3, int(keys["k"][3])]


@pytest.mark.parametrize("values", [["x", "y", "z"], [10, 20, 30]])
def test_a_categorical_column_empty_in_every_row_is_filled_with_the_categories_of_fit(values):
    # Read from a CSV, a column without a single value is float64 (all NaN); its fills are still categories
    # (they failed: "could not convert string to float: 'x'").
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "cat": rng.choice(np.array(values, dtype=object), 40)})
    imputer = MaskedImputer(**FAST, categorical=["cat"]).fit(frame)
    empty = frame.head(3).assign(cat=np.nan)  # float64
    filled = imputer.transform(empty)
    keys = predicted_keys(imputer, empty)["cat"]
    assert filled["cat"].tolist() == [type(values[0])(k) for k in keys]
    assert set(filled["cat"]) <= set(values)
    pd.testing.assert_series_equal(filled["a"], empty["a"])
