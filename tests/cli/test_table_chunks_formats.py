"""Chunked impute equals the whole-file impute for every input/output format pair (CSV/Parquet in x CSV/Parquet
out); Parquet to CSV printed an integer column stored as float64 as ``4.0`` in chunks without a missing cell
(the whole file makes it int64: ``4``)."""

import numpy as np
import pandas as pd
import pytest

from masklab.cli import main

N = 60


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunks_formats")
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, N),
            "income": np.round(rng.normal(50_000, 12_000, N), 2),
            "city": rng.choice(["Paris", "Lyon", "Nice"], N),
            "member": rng.choice([True, False], N),
        }
    )
    train = frame.astype({"age": "float64"})
    train.loc[7, "age"] = np.nan  # whole numbers stored as float64, as a column with a missing cell is
    train.to_parquet(root / "train.parquet", index=False)
    run = root / "run"
    args = ["pretrain", "table", "--data", str(root / "train.parquet"), "--out", str(run), "--preset", "table-tiny"]
    assert main([*args, "--steps", "5", "--batch-size", "16"]) == 0
    return frame, run


def _input(tmp_path, frame, suffix):
    """Nine rows (three chunks of 3); `age` (whole numbers, float64 because of its one missing cell) is missing
    in the first chunk only, so the other chunks hold only whole floats."""
    rows = frame.iloc[:9].copy()
    rows["age"] = rows["age"].astype("float64")
    rows.loc[0, "age"] = np.nan
    rows.loc[4, "city"] = None
    rows["ref"] = np.arange(9, dtype="float64")  # not a feature: passes through
    rows.loc[8, "ref"] = np.nan
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        rows.to_csv(path, index=False)
    else:
        rows.to_parquet(path, index=False, row_group_size=3)  # three row groups: three chunks
    return path


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else pd.read_parquet(path)


@pytest.mark.parametrize("source", [".csv", ".parquet"])
@pytest.mark.parametrize("target", [".csv", ".parquet"])
def test_chunked_equals_whole_file(trained, tmp_path, source, target):
    frame, run = trained
    data = _input(tmp_path, frame, source)
    whole, chunked = tmp_path / f"whole{target}", tmp_path / f"chunked{target}"
    assert main(["impute", str(run), str(data), "-o", str(whole), "--exclude", "ref"]) == 0
    assert main(["impute", str(run), str(data), "-o", str(chunked), "--chunk-rows", "3", "--exclude", "ref"]) == 0
    if target == ".csv":
        assert whole.read_text() == chunked.read_text()
    pd.testing.assert_frame_equal(_read(chunked), _read(whole))


PYARROW_FULL = "Error writing bytes to file. Detail: [errno 28] No space left on device"


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), OSError(PYARROW_FULL)])
def test_full_disk_names_the_output(trained, tmp_path, capsys, monkeypatch, error):
    from masklab.data import table_stream

    frame, run = trained
    data = _input(tmp_path, frame, ".parquet")

    def full(self, chunk):
        raise error

    monkeypatch.setattr(table_stream.ChunkWriter, "write", full)
    out = tmp_path / "filled.csv"
    assert main(["impute", str(run), str(data), "-o", str(out), "--chunk-rows", "3", "--exclude", "ref"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: No space left on device" in err and "Traceback" not in err
