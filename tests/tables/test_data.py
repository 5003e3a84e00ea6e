"""Table readers, built-ins and the training dataset."""

import re

import pandas as pd
import pytest
import torch

from masklab.data.tables import TableTrainData, load_builtin, load_table, read_table_file
from masklab.tokenizers.table import encode_frame, infer_schema


def test_shuttle_builtin_keeps_the_label_out_of_the_features():
    table = load_builtin("shuttle")
    assert table.frame.shape == (49_097, 9) and "anomaly" not in table.frame.columns
    assert table.label_name == "anomaly" and abs(table.labels.mean() - 0.0715) < 0.001


@pytest.mark.parametrize(
    ("name", "shape", "label"),
    [("iris", (150, 4), "target"), ("wine", (178, 13), "target"), ("breast-cancer", (569, 30), "malignant"),
     ("diabetes", (442, 10), "target"), ("default", (10_000, 3), "default")],
)  # fmt: skip
def test_builtins(name, shape, label):
    table = load_builtin(name)
    assert table.frame.shape == shape and table.label_name == label
    assert label not in table.frame.columns


def test_default_rates():
    table = load_builtin("default")
    assert abs(table.labels.mean() - 0.0333) < 0.001
    assert infer_schema(table.frame).columns[0].kind == "categorical"  # student: Yes / No


def test_load_table_spec(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": [1, 2], "y": [3, 4], "label": [0, 1]}).to_csv(path, index=False)
    table = load_table(str(path), exclude=("y",), label="label")
    assert list(table.frame.columns) == ["x"] and table.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"column\(s\) \['nope'\] named by --exclude"):
        load_table(str(path), exclude=("nope",))
    with pytest.raises(ValueError, match="unknown built-in dataset 'nope'"):
        load_table("builtin:nope")


def test_reader_errors(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_table_file(empty)
    header = tmp_path / "h.csv"
    header.write_text("a,b\n")
    with pytest.raises(ValueError, match="header but no data rows"):
        read_table_file(header)
    duplicate = tmp_path / "d.csv"
    duplicate.write_text("a,a\n1,2\n")
    with pytest.raises(ValueError, match=r"duplicate column name\(s\) \['a'\]"):
        read_table_file(duplicate)
    with pytest.raises(ValueError, match=r"unknown table format '\.xlsx'"):
        (tmp_path / "t.xlsx").write_text("x")
        read_table_file(tmp_path / "t.xlsx")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table_file(tmp_path / "missing.csv")


def test_a_file_written_with_another_separator_is_refused(tmp_path):
    # It read as one text column of whole lines ('a;b'), trained on, with only an identifier warning.
    from masklab.data.table_stream import iter_table_chunks

    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1.5;2\n3;4\n")
    tab = tmp_path / "t.tsv"
    tab.write_text("a,b\n1,2\n")
    for path, sep in ((semi, "';'"), (tab, "','")):
        with pytest.raises(ValueError, match=rf"{re.escape(path.name)}: reads as one column .* split at {sep} into 2"):
            read_table_file(path)
    with pytest.raises(ValueError, match=r"semi\.csv: reads as one column"):
        next(iter_table_chunks(semi, chunk_rows=1))
    one = tmp_path / "one.csv"  # a real one-column file whose values hold a ';' is read as it is
    one.write_text("name\nx;y\nz\n")
    assert read_table_file(one)["name"].tolist() == ["x;y", "z"]


def test_text_read_keeps_cells_verbatim(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1.50,NA\n,x\n")
    raw = read_table_file(path, as_text=True)
    assert raw.values.tolist() == [["1.50", "NA"], ["", "x"]]
    typed = read_table_file(path)
    assert typed["b"].isna().tolist() == [True, False]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"x": [1.0, None], "c": ["a", None]})
    frame.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table_file(tmp_path / "t.parquet"), frame, check_dtype=False)


def test_train_data_batches():
    frame = pd.DataFrame({"x": [1.0, None, 3.0], "c": ["a", "b", None]})
    encoded = encode_frame(frame, infer_schema(frame))
    batch = TableTrainData(encoded).get_batch(torch.tensor([2, 0]), torch.Generator())
    assert batch["missing"].tolist() == [[False, True], [False, False]]
    assert len(TableTrainData(encoded)) == 3
