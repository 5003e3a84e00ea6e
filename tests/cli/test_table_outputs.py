"""impute / score outputs: never the input (hard links, side outputs), written atomically, and CSV text kept
exact (imputed numbers at full precision; read chunk by chunk, every observed cell's text kept: chunked ==
whole file); a file that is not UTF-8 is refused naming it."""

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


def test_chunked_impute_keeps_the_text_of_every_observed_cell(trained, tmp_path):
    frame, run = trained
    source = write_input(tmp_path / "lead.csv", frame)
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    assert main(["impute", str(run), str(source), "-o", str(whole)]) == 0
    assert main(["impute", str(run), str(source), "-o", str(chunked), "--chunk-rows", "3"]) == 0
    assert chunked.read_bytes() == whole.read_bytes()
    assert pd.read_csv(chunked, dtype=str)["cid"].tolist()[:3] == ["0000", "0001", "0002"]


@pytest.mark.parametrize("command", ["impute", "score"])
def test_a_file_that_is_not_utf8_is_named(trained, tmp_path, capsys, command):
    frame, run = trained
    source = write_input(tmp_path / "latin.csv", frame)
    source.write_bytes(source.read_bytes().replace(b"Lyon", "Orl\u00e9ans".encode("latin-1")))
    err = error_of([command, str(run), str(source), "-o", str(tmp_path / "o.csv")], capsys)
    assert f"{source}: not UTF-8 text (byte " in err and "re-save it as UTF-8" in err


def test_not_utf8_names_the_offset_in_the_file_and_in_chunks(tmp_path):
    from masklab.data.table_stream import iter_table_chunks
    from masklab.data.tables import read_table_file

    source = tmp_path / "late.csv"
    head = "a,b\n" + "1,x\n" * 400_000  # the bad byte lies past the first read block
    source.write_bytes(head.encode() + "2,Orl\u00e9ans\n".encode("latin-1"))
    at = len(head) + 5
    with pytest.raises(ValueError, match=rf"^{source}: not UTF-8 text \(byte {at}\); re-save it as UTF-8$"):
        read_table_file(source)
    with pytest.raises(ValueError, match=rf"^{source}: not UTF-8 text \(byte {at}\)"):
        list(iter_table_chunks(source, chunk_rows=100_000))
