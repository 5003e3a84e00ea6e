"""Tables in chunks: impute / score chunk by chunk (CSV chunks, Parquet row groups) == the whole file at once."""

import numpy as np
import pandas as pd
import pytest

from masklab.data.table_stream import iter_table_chunks, map_table


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 300
    a = rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=n), "c": rng.choice(["x", "y", "z"], size=n)})
    df.loc[rng.random(n) < 0.1, "b"] = np.nan
    df.loc[rng.random(n) < 0.1, "c"] = None
    return df


@pytest.fixture(scope="module")
def imputer(frame):
    import torch

    from masklab.estimators import MaskedImputer

    torch.set_num_threads(1)
    return MaskedImputer(preset="table-tiny", steps=30, batch_size=32, random_state=0, device="cpu").fit(frame)


def test_parquet_row_groups_and_csv_chunks(frame, tmp_path):
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=70)
    frame.to_csv(tmp_path / "t.csv", index=False)
    assert [len(c) for c in iter_table_chunks(tmp_path / "t.parquet", chunk_rows=50)] == [50, 20] * 4 + [20]
    assert [len(c) for c in iter_table_chunks(tmp_path / "t.csv", chunk_rows=128)] == [128, 128, 44]
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown table format"):
        next(iter_table_chunks(tmp_path / "t.json"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunked_impute_equals_whole_file(frame, imputer, tmp_path, suffix):
    source = tmp_path / f"in{suffix}"
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source, row_group_size=64)
    whole = imputer.transform(frame)
    rows = map_table(source, tmp_path / f"out{suffix}", imputer.transform, chunk_rows=50)
    assert rows == len(frame)
    out = tmp_path / f"out{suffix}"
    chunked = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert chunked["c"].tolist() == whole["c"].tolist()
    np.testing.assert_allclose(chunked[["a", "b"]].to_numpy(), whole[["a", "b"]].to_numpy(), rtol=1e-6, atol=1e-9)
    assert not chunked.isna().any().any()


def test_chunked_score_equals_whole_file(frame, tmp_path):
    import torch

    from masklab.estimators import MaskedAnomalyDetector

    torch.set_num_threads(1)
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=30, batch_size=32, random_state=0, device="cpu")
    detector.fit(frame)
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=64)
    whole = detector.anomaly_score(frame)
    map_table(tmp_path / "in.parquet", tmp_path / "scores.csv",
              lambda chunk: pd.DataFrame({"anomaly_score": detector.anomaly_score(chunk)}), chunk_rows=40)  # fmt: skip
    np.testing.assert_allclose(pd.read_csv(tmp_path / "scores.csv")["anomaly_score"], whole, rtol=1e-6)
