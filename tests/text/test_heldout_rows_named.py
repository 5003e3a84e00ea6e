"""With prepared shards the MLM holds out rows (the stream's end), not documents: eval.json says
``heldout_rows`` and the log "rows held out" (it said ``heldout_documents`` / "(19 held out)")."""

import json
import random

import pytest

from masklab.cli import main

pytest.importorskip("tokenizers")


def test_shards_hold_out_rows(tmp_path, capsys):
    rng = random.Random(0)
    words = ["team", "match", "goal", "bank", "shares", "market", "the", "and"]
    src = tmp_path / "corpus.txt"
    src.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(60)) + "\n")
    argv = ["pretrain", "mlm", "--data", str(src), "--out", str(tmp_path / "run"), "--preset", "bert-tiny",
            "--seq-len", "16", "--batch-size", "4", "--device", "cpu", "--holdout", "0.1", "--vocab-size", "60",
            "--steps", "1"]  # fmt: skip
    assert main(argv) == 0
    scores = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert "heldout_documents" not in scores and scores["heldout_rows"] == scores["heldout"]["rows_held_out"]
    assert f"({scores['heldout_rows']} rows held out)" in capsys.readouterr().out
