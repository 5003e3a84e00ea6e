"""An MLM run's recorded data and what probe / finetune test on: text.json records an absolute path, the test
documents of the run's own built-in data are the ones pretraining held out (else the printed line says they
were seen unlabelled), --max-examples follows MAE's rule, a one-document class is named, and a finetune --out
inside --data is refused."""

import json
import os
import random

import numpy as np
import pytest

from masklab.cli import main

pytest.importorskip("tokenizers")

WORDS = {"business": ["bank", "shares", "profit", "market"], "sport": ["team", "match", "goal", "coach"]}
TINY = ["--preset", "bert-tiny", "--vocab-size", "80", "--seq-len", "16", "--batch-size", "8", "--device", "cpu"]


def make_docs(root, per_class=10):
    rng = random.Random(0)
    for label, words in WORDS.items():
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            text = " ".join(f"the {rng.choice(words)} and the {rng.choice(words)}." for _ in range(3))
            (root / label / f"{i:02d}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """``home/docs`` (20 documents) pretrained with the relative ``--data docs`` from ``home``."""
    home = tmp_path_factory.mktemp("home")
    make_docs(home / "docs")
    before = os.getcwd()
    os.chdir(home)
    try:
        assert main(["pretrain", "mlm", "--data", "docs", "--out", "run", "--steps", "2", "--holdout", "0",
                     *TINY]) == 0  # fmt: skip
    finally:
        os.chdir(before)
    return home


def test_text_json_records_the_absolute_path(home):
    assert json.loads((home / "run" / "text.json").read_text())["data"] == str((home / "docs").resolve())


def test_embed_from_another_folder_reads_the_runs_data(home, tmp_path, monkeypatch):
    make_docs(tmp_path / "docs", per_class=3)  # a same-named folder of other documents
    monkeypatch.chdir(tmp_path)
    assert main(["embed", str(home / "run"), "-o", "e.npy"]) == 0
    assert np.load(tmp_path / "e.npy").shape[0] == 20


def test_probe_says_its_test_documents_were_seen_in_pretraining(home, capsys):
    assert main(["probe", str(home / "run"), "--device", "cpu"]) == 0
    assert "seen unlabelled in pretraining" in capsys.readouterr().out


def test_max_examples_below_two_is_refused(home, capsys):
    assert main(["probe", str(home / "run"), "--max-examples", "-3", "--device", "cpu"]) == 2
    assert "--max-examples must be >= 2" in capsys.readouterr().err


def test_max_examples_caps_train_and_test_together(home, capsys):
    assert main(["probe", str(home / "run"), "--max-examples", "10", "--device", "cpu"]) == 0
    assert "probe trained on 8 documents, scored on 2 " in capsys.readouterr().out


def test_finetune_out_inside_data_is_refused(home, capsys):
    out = home / "docs" / "ft"
    assert main(["finetune", str(home / "run"), "--data", str(home / "docs"), "--steps", "1", "--device", "cpu",
                 "--out", str(out)]) == 2  # fmt: skip
    assert "--data" in capsys.readouterr().err and not out.exists()


def test_one_document_class_is_named():
    from masklab.data.text import stratified_split

    with pytest.raises(ValueError, match="class 'zzz' has 1 examples"):
        stratified_split([0] * 6 + [1], 0.2, 0, names=("a", "zzz"))


def test_builtin_runs_test_on_the_pretraining_holdout():
    from masklab.data.text import TextCorpus, holdout_split
    from masklab.recipes.mlm_tasks import split_documents

    corpus = TextCorpus(["x"] * 300, [i % 3 for i in range(300)], ("a", "b", "c"), "builtin:bbc-news")
    info = {"data": "builtin:bbc-news", "holdout": 0.05, "seed": 3}
    train, test, what = split_documents(corpus, "builtin:bbc-news", info, seed=0)
    assert test == holdout_split(300, 0.05, 3)[1] and "held out" in what
    assert sorted(train + test) == list(range(300))
    _, other, what = split_documents(corpus, "builtin:other", info, seed=0)
    assert len(other) == 60 and "seen unlabelled" not in what
