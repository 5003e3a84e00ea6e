"""Chunked impute to Parquet writes the same table (dtypes included) as the whole-file impute, although each
CSV chunk's column types are inferred on their own; a column no single type can hold is refused by name."""

import numpy as np
import pandas as pd
import pytest

from masklab.cli import main

N = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunks_parquet")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "cid": np.arange(1000, 1000 + N),
            "age": rng.integers(18, 80, N),
            "income": np.round(rng.normal(50_000, 12_000, N), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice"], N),
            "member": rng.choice([True, False], N),
            "score": rng.normal(0, 1, N),
            "ref": rng.integers(1, 9, N),  # not a feature of the run: passes through
        }
    )
    frame.to_csv(root / "train.csv", index=False)
    run = root / "run"
    args = ["pretrain", "table", "--data", str(root / "train.csv"), "--out", str(run), "--preset", "table-tiny"]
    assert main([*args, "--steps", "10", "--batch-size", "16", "--exclude", "cid,ref"]) == 0
    return frame, run


def write_input(path, frame):
    """Nine rows (three chunks of 3): `member` missing where its chunk holds only True otherwise, `age` missing
    in the first chunk only, `ref` (pass-through integers) missing in the last chunk only."""
    rows = frame.iloc[:9].copy().astype(object)
    rows["member"] = pd.Series([True, True, True, False, True, True, False, False, True], dtype=object)
    for row, column in ((0, "age"), (3, "member"), (4, "city"), (5, "income"), (6, "score"), (7, "ref")):
        rows.loc[row, column] = None
    rows.to_csv(path, index=False)
    return path


def test_chunked_parquet_equals_the_whole_file(trained, tmp_path):
    frame, run = trained
    source = write_input(tmp_path / "in.csv", frame)
    whole, chunked = tmp_path / "whole.parquet", tmp_path / "chunked.parquet"
    assert main(["impute", str(run), str(source), "-o", str(whole)]) == 0
    assert main(["impute", str(run), str(source), "-o", str(chunked), "--chunk-rows", "3"]) == 0
    expected = pd.read_parquet(whole)
    assert expected["member"].dtype == bool and expected["age"].dtype == np.int64
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), expected)


def test_a_column_no_one_type_holds_is_refused_by_name(trained, tmp_path, capsys):
    frame, run = trained
    rows = frame.iloc[:6].copy().astype(object)
    rows["ref"] = [1, 2, 3, "x", "y", "z"]  # integers in the first chunk, text in the second
    source = tmp_path / "mixed.csv"
    rows.to_csv(source, index=False)
    target = tmp_path / "out.parquet"
    args = ["impute", str(run), str(source), "-o", str(target), "--chunk-rows", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: ") and "Traceback" not in err
    assert "'ref'" in err and "rows 4-6" in err and "--chunk-rows" in err and ".csv" in err
    assert "int64" in err
    assert not target.exists() and list(tmp_path.iterdir()) == [source]
