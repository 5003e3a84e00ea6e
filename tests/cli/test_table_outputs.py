"""impute / score outputs: never the input (hard links, side outputs), written atomically, and CSV text kept
exact (imputed numbers at full precision)."""

import os

import numpy as np
import pandas as pd
import pytest

from masklab.cli import main

N = 40


def write_train(path, n=N, seed=1):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "cid": [f"{i:04d}" for i in range(n)],
            "age": rng.integers(18, 80, n),
            "price": np.round(rng.normal(2_500_000, 50_000, n), 2),
            "city": rng.choice(["Paris", "Lyon"], n),
            "zip": rng.choice(["01234", "00501", "75001"], n),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def write_input(path, frame):
    """The first 8 rows as text, with one missing cell in each feature column (leading zeros kept)."""
    text = frame.iloc[:8].astype(str).copy()
    for row, column in ((1, "age"), (2, "city"), (4, "price"), (5, "age"), (6, "zip")):
        text.loc[row, column] = ""
    text.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    frame = write_train(root / "train.csv")
    run = root / "run"
    args = ["pretrain", "table", "--data", str(root / "train.csv"), "--out", str(run), "--preset", "table-tiny"]
    assert main([*args, "--steps", "10", "--batch-size", "16", "--exclude", "cid", "--device", "cpu"]) == 0
    return frame, run


def error_of(args, capsys):
    assert main(args) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("command", ["impute", "score"])
def test_a_hard_link_to_the_input_is_refused(trained, tmp_path, capsys, command):
    frame, run = trained
    source = write_input(tmp_path / "in.csv", frame)
    before = source.read_bytes()
    os.link(source, tmp_path / "hard.csv")
    err = error_of([command, str(run), str(source), "-o", str(tmp_path / "hard.csv")], capsys)
    assert "is the input file" in err
    assert source.read_bytes() == before


def test_score_explain_and_histogram_never_overwrite_the_input(trained, tmp_path, capsys):
    frame, run = trained
    source = write_input(tmp_path / "r.explain.csv", frame)
    before = source.read_bytes()
    err = error_of(["score", str(run), str(source), "-o", str(tmp_path / "r.csv"), "--explain"], capsys)
    assert "--explain" in err and "is the input file" in err
    assert source.read_bytes() == before and not (tmp_path / "r.csv").exists()
    png = tmp_path / "in.png"
    png.write_bytes(b"not really a png")
    os.link(png, tmp_path / "in_hard.png")
    err = error_of(["score", str(run), str(png), "-o", str(tmp_path / "s.csv"), "--histogram",
                    str(tmp_path / "in_hard.png")], capsys)  # fmt: skip
    assert "--histogram" in err and "is the input file" in err
    assert png.read_bytes() == b"not really a png"


def test_table_outputs_are_written_through_a_temporary_file(trained, tmp_path, monkeypatch):
    frame, run = trained
    source = write_input(tmp_path / "in.csv", frame)
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    os.link(target, tmp_path / "other_name.csv")  # an in-place write would change this one too
    assert main(["impute", str(run), str(source), "-o", str(target)]) == 0
    assert (tmp_path / "other_name.csv").read_text() == "old\n"
    assert main(["score", str(run), str(source), "-o", str(target), "--explain"]) == 0
    assert (tmp_path / "other_name.csv").read_text() == "old\n"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_imputed_numbers_keep_full_precision(trained, tmp_path):
    frame, run = trained
    source = write_input(tmp_path / "in.csv", frame)
    assert main(["impute", str(run), str(source), "-o", str(tmp_path / "o.csv")]) == 0
    assert main(["impute", str(run), str(source), "-o", str(tmp_path / "o.parquet")]) == 0
    text = pd.read_csv(tmp_path / "o.csv", dtype=str)
    exact = pd.read_parquet(tmp_path / "o.parquet")
    assert "e" not in text.loc[4, "price"].lower()
    assert float(text.loc[4, "price"]) == float(exact.loc[4, "price"])
    for row in (1, 5):  # an integer column gets a whole number written as one
        assert text.loc[row, "age"] == str(int(exact.loc[row, "age"]))
