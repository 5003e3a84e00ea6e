"""Schema inference, encoding/validation and the cell tokenizer."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from masklab.tokenizers.table import (
    CellTokenizer,
    ColumnSpec,
    TableSchema,
    category_key,
    decode_columns,
    encode_frame,
    infer_schema,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30.0, np.nan, 50.0, 40.0],
            "city": ["Oslo", "Lima", None, "Oslo"],
            "flag": [True, False, True, True],
            "code": ["1", "2", "", "3"],  # text that is all numbers -> numeric
        }
    )


def test_infer_schema_kinds_and_stats(frame):
    schema = infer_schema(frame)
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"age": "numeric", "city": "categorical", "flag": "categorical", "code": "numeric"}
    age = schema.columns[0]
    assert age.mean == pytest.approx(40.0) and age.std == pytest.approx(np.std([30.0, 50.0, 40.0]))
    assert schema.columns[1].categories == ("Lima", "Oslo")
    assert schema.cardinalities == (0, 2, 2, 0)
    assert TableSchema.from_config(schema.to_dict()) == schema


def test_overrides(frame):
    schema = infer_schema(frame, categorical=["code"])
    assert schema.columns[3].kind == "categorical" and schema.columns[3].categories == ("1", "2", "3")
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['nope'\]"):
        infer_schema(frame, categorical=["nope"])
    with pytest.raises(ValueError, match="both categorical and numeric"):
        infer_schema(frame, categorical=["age"], numeric=["age"])


def test_all_missing_column_is_an_error(frame):
    frame["empty"] = [np.nan, None, "", "  "]
    with pytest.raises(ValueError, match="column 'empty' is entirely missing"):
        infer_schema(frame)


def test_text_in_numeric_column_names_column_and_row():
    bad = pd.DataFrame({"x": ["1.5", "2", "3", "abc", "4"]})
    with pytest.raises(ValueError, match=r"column 'x' is numeric but row 4 holds 'abc'"):
        infer_schema(bad)
    schema = infer_schema(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=r"column 'x' is numeric but row 2 holds 'two'"):
        encode_frame(pd.DataFrame({"x": ["1", "two"]}), schema)
    with pytest.raises(ValueError, match=r"column 'x': row 1 holds inf"):
        encode_frame(pd.DataFrame({"x": [np.inf, 1.0]}), schema)


def test_encode_validates_columns(frame):
    schema = infer_schema(frame)
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['extra'\]"):
        encode_frame(frame.assign(extra=1), schema)
    with pytest.raises(ValueError, match=r"column\(s\) \['age'\] from training are missing"):
        encode_frame(frame.drop(columns="age"), schema)
    with pytest.raises(ValueError, match="no data rows"):
        encode_frame(frame.iloc[:0], schema)


def test_unseen_category(frame):
    schema = infer_schema(frame)
    new = frame.assign(city=["Oslo", "Rome", "Lima", None])
    with pytest.raises(ValueError, match=r"column 'city': row 2 holds 'Rome', a category not seen"):
        encode_frame(new, schema)
    encoded = encode_frame(new, schema, handle_unknown="missing")
    assert encoded.missing[:, 1].tolist() == [False, True, False, True]


def test_encode_values_and_missing(frame):
    schema = infer_schema(frame)
    encoded = encode_frame(frame, schema)
    age = schema.columns[0]
    expected_missing = torch.tensor(
        [[False, False, False, False], [True, False, False, False], [False, True, False, True], [False] * 4]
    )
    torch.testing.assert_close(encoded.missing, expected_missing)
    torch.testing.assert_close(encoded.values[:, 0], torch.tensor([(30 - 40) / age.std, 0.0, (50 - 40) / age.std, 0.0]))
    torch.testing.assert_close(encoded.categories[:, 1], torch.tensor([1, 0, 0, 1]))  # Lima=0, Oslo=1
    torch.testing.assert_close(encoded.categories[:, 2], torch.tensor([1, 0, 1, 1]))  # False=0, True=1
    decoded = decode_columns(encoded.values.double(), encoded.categories, schema)
    np.testing.assert_allclose(decoded["age"][[0, 2, 3]], [30.0, 50.0, 40.0], rtol=1e-6)
    assert decoded["city"].tolist() == ["Oslo", "Lima", "Lima", "Oslo"]


def test_category_key_merges_number_spellings():
    assert category_key(3) == category_key(3.0) == category_key("3") == category_key(np.int64(3)) == "3"
    assert category_key(True) == "True" and category_key(" a ") == "a"


def test_cell_tokenizer_embeds_each_kind():
    torch.manual_seed(0)
    tok = CellTokenizer([0, 3, 0, 2], dim=8)
    values = torch.tensor([[0.5, 0.0, -2.0, 0.0]])
    categories = torch.tensor([[0, 2, 0, 1]])
    out = tok(values, categories)  # (1, 4, 8)
    assert out.shape == (1, 4, 8)
    expected = (
        torch.stack(
            [
                0.5 * tok.num_weight[0] + tok.num_bias[0],
                tok.cat_embed.weight[1 + 2],  # offsets start at 1; column 1 uses rows 1..3
                -2.0 * tok.num_weight[2] + tok.num_bias[2],
                tok.cat_embed.weight[4 + 1],  # column 3 uses rows 4..5
            ]
        )
        + tok.pos_embed
    )
    torch.testing.assert_close(out[0], expected)
    assert "is_categorical" not in tok.state_dict()  # derived from the config, not saved


def test_schema_rejects_duplicates_and_bad_kinds():
    with pytest.raises(ValueError, match="duplicate column names"):
        TableSchema((ColumnSpec("a", "numeric"), ColumnSpec("a", "numeric")))
    with pytest.raises(ValueError, match="kind must be numeric or categorical"):
        ColumnSpec.from_config({"name": "a", "kind": "text"})
    assert math.isclose(infer_schema(pd.DataFrame({"c": [2.0, 2.0]})).columns[0].std, 1.0)


def test_integer_columns_are_recorded_and_decoded_whole():
    frame = pd.DataFrame({"n": [1.0, np.nan, 3.0, 4.0], "x": [0.5, 1.0, 2.0, 3.0], "t": ["2", "", "7", "9"]})
    schema = infer_schema(frame)
    assert [c.integer for c in schema.columns] == [True, False, True]
    assert schema.to_dict()["columns"][0]["integer"] is True and "integer" not in schema.to_dict()["columns"][1]
    assert TableSchema.from_config(schema.to_dict()) == schema
    old = {"columns": [{"name": "n", "kind": "numeric", "mean": 0.0, "std": 1.0}]}  # written before the field
    assert TableSchema.from_config(old).columns[0].integer is False
    standardised = torch.tensor([[(61.688 - schema.columns[0].mean) / schema.columns[0].std, 0.25, 0.0]])
    decoded = decode_columns(standardised.double(), torch.zeros(1, 3, dtype=torch.long), schema)
    assert decoded["n"][0] == 62.0 and decoded["x"][0] != round(decoded["x"][0])


def test_identifier_columns():
    from masklab.tokenizers.table import identifier_columns

    n = 12
    frame = pd.DataFrame(
        {
            "id": np.arange(100, 100 + n),  # a contiguous range
            "order": np.cumsum(np.arange(1, n + 1)),  # whole, distinct, increasing
            "key": [f"k{i:03d}" for i in np.random.default_rng(0).permutation(n)],  # distinct text
            "text_id": [str(i) for i in range(n)],  # numbers written as text
            "x": np.linspace(0.0, 1.0, n),  # distinct but not whole: a measurement
            "count": [5, 1, 9, 3, 7, 2, 8, 4, 6, 12, 11, 30],  # distinct, whole, neither ordered nor a range
            "city": ["Oslo", "Lima"] * (n // 2),
            "gappy": [*range(n - 1), None],  # one missing cell: not an id
        }
    )
    assert identifier_columns(frame) == ["id", "order", "key", "text_id"]
    assert identifier_columns(frame.iloc[:5]) == []  # too few rows to tell
