"""An MLM run downstream: the fine-tune output layout (``RUN/finetune``), ``predict`` on a .txt and a .csv against
the model's own argmax, an old ``finetune-classify`` folder still predicting, and ``embed``'s row index."""

import csv
import json
import random
import shutil

import numpy as np
import pytest
import torch

from masklab.cli import main

pytest.importorskip("tokenizers")

WORDS = {"business": ["bank", "shares", "profit", "market"], "sport": ["team", "match", "goal", "coach"]}
TINY = ["--preset", "bert-tiny", "--vocab-size", "80", "--seq-len", "16", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm")
    rng = random.Random(0)
    for label, words in WORDS.items():
        (root / "data" / label).mkdir(parents=True)
        for i in range(10):
            text = " ".join(f"the {rng.choice(words)} and the {rng.choice(words)}." for _ in range(3))
            (root / "data" / label / f"{i:02d}.txt").write_text(text, encoding="utf-8")
    out = root / "run"
    assert main(["pretrain", "mlm", "--data", str(root / "data"), "--out", str(out), "--steps", "2",
                 "--holdout", "0", *TINY]) == 0  # fmt: skip
    assert main(["finetune", str(out), "--steps", "2", "--batch-size", "8", "--device", "cpu"]) == 0
    return out


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_finetune_layout(run):
    out = run / "finetune"
    assert not (run / "finetune-classify").exists()
    for name in ("model.safetensors", "config.json", "metrics.json", "confusion.png", "confusion.csv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == ["business", "sport"] and metrics["test_size"] == 4
    assert np.array(metrics["confusion"]).sum() == 4
    assert read_csv(out / "confusion.csv")[0]["true \\ predicted"] == "business"


def _model_probs(directory, texts):
    from masklab.recipes.finetune_outputs import load_finetuned
    from masklab.recipes.mlm import encode_docs
    from masklab.tokenizers.text import TextTokenizer

    model = load_finetuned(directory)
    blocks = encode_docs(TextTokenizer.load(directory / "tokenizer.json"), texts, 16)
    with torch.no_grad():
        return model.classify(blocks.ids, blocks.padding).softmax(-1).numpy()


def test_predict_txt_and_csv_match_the_models_argmax(run, tmp_path, capsys):
    texts = ["the goal and the coach.", "profit at the bank.", "the market and the team."]
    (tmp_path / "docs.txt").write_text("\n".join([texts[0], "", *texts[1:]]) + "\n")
    with open(tmp_path / "docs.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "body"], *([i, t] for i, t in enumerate(texts))])
    probs = _model_probs(run / "finetune", texts)
    want = [["business", "sport"][i] for i in probs.argmax(1)]
    out = tmp_path / "p.csv"
    assert main(["predict", str(run), str(tmp_path / "docs.txt"), "-o", str(out), "--device", "cpu"]) == 0
    rows = read_csv(out)
    assert [r["source"] for r in rows] == [f"{tmp_path / 'docs.txt'}:{n}" for n in (1, 3, 4)]  # blank line 2
    assert [r["prediction"] for r in rows] == want
    np.testing.assert_allclose([[float(r["p_business"]), float(r["p_sport"])] for r in rows], probs, rtol=1e-4)
    argv = ["predict", str(run), str(tmp_path / "docs.csv"), "-o", str(out), "--device", "cpu"]
    assert main(argv) == 2
    assert "no 'text' column" in capsys.readouterr().err
    assert main([*argv, "--text-column", "body"]) == 0
    assert [r["prediction"] for r in read_csv(out)] == want
    assert main(["predict", str(run), str(tmp_path / "docs.csv"), "-o", str(tmp_path / "docs.csv")]) == 2
    assert "is the input itself" in capsys.readouterr().err


def test_documents_longer_than_the_model_reads_are_said(run, tmp_path, capsys):
    # A document past seq_len keeps its start (BERT's fine-tuning recipe); that was done without a word, so
    # two documents differing only after the cut got the same probabilities and nobody knew why.
    short, long = "profit at the bank.", " ".join(["the goal and the coach."] * 20)
    (tmp_path / "docs.txt").write_text(f"{short}\n{long}\n")
    assert main(["predict", str(run), str(tmp_path / "docs.txt"), "-o", str(tmp_path / "p.csv")]) == 0
    out, err = capsys.readouterr()
    assert "masklab: note: 1 of 2 inputs are longer than the model reads (14 tokens between [CLS] and [SEP]" in err
    assert "each keeps its first 14" in err and "2 inputs, predicted" in out
    (tmp_path / "one.txt").write_text(f"{short}\n")
    assert main(["predict", str(run), str(tmp_path / "one.txt"), "-o", str(tmp_path / "p.csv")]) == 0
    out, err = capsys.readouterr()
    assert "note" not in err and "1 input, predicted" in out


def test_an_old_finetune_classify_folder_still_predicts(run, tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    legacy = old / "finetune-classify"
    shutil.copytree(run / "finetune", legacy)
    metrics = json.loads((legacy / "metrics.json").read_text())
    for name in ("model.safetensors", "metrics.json", "confusion.csv"):
        (legacy / name).unlink()
    (legacy / "finetune.json").write_text(json.dumps(metrics))
    (tmp_path / "one.txt").write_text("the goal and the coach.\n")
    assert main(["predict", str(old), str(tmp_path / "one.txt"), "-o", str(tmp_path / "p.csv")]) == 0
    probs = _model_probs(run / "finetune", ["the goal and the coach."])
    assert read_csv(tmp_path / "p.csv")[0]["prediction"] == ["business", "sport"][probs.argmax()]


def test_predict_on_a_pretraining_run_without_finetune_is_clear(tmp_path, run, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "checkpoint.safetensors", "tokenizer.json", "text.json"):
        shutil.copy(run / name, bare / name)
    (tmp_path / "one.txt").write_text("x\n")
    assert main(["predict", str(bare), str(tmp_path / "one.txt")]) == 2
    assert "fine-tune it first" in capsys.readouterr().err


def test_embed_index_has_documents_and_labels(run, tmp_path):
    out = tmp_path / "e.npy"
    assert main(["embed", str(run), "-o", str(out), "--device", "cpu"]) == 0
    index = read_csv(tmp_path / "e.index.csv")
    assert np.load(out).shape[0] == len(index) == 20
    assert [r["label"] for r in index] == ["business"] * 10 + ["sport"] * 10
    assert index[3]["source"].endswith("business/03.txt")  # each row names its document's file


def test_embed_names_each_jsonl_record_by_its_line_and_says_which_were_blank(run, tmp_path, capsys):
    # Blank records were left out without a word and rows were named data[i] by their order after that, so
    # row 1 (the 3rd record) was labelled as the blank 2nd one.
    lines = ['{"text": "the goal and the coach", "label": "sport"}', '{"text": "", "label": "business"}',
             '{"text": "profit at the bank", "label": "business"}', '{"text": "   ", "label": "sport"}',
             '{"text": "the team and the match", "label": "sport"}']  # fmt: skip
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "e.npy"
    assert main(["embed", str(run), "--data", str(data), "-o", str(out), "--device", "cpu"]) == 0
    assert f"left out 2 blank documents: {data}:2, {data}:4" in capsys.readouterr().err
    index = read_csv(tmp_path / "e.index.csv")
    assert [r["source"] for r in index] == [f"{data}:1", f"{data}:3", f"{data}:5"]
    assert [r["label"] for r in index] == ["sport", "business", "sport"]


def test_skip_bad_text_file(run, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(run.parent / "data", data)
    (data / "sport" / "latin.txt").write_bytes("caf\xe9 goal".encode("latin-1"))
    argv = ["embed", str(run), "--data", str(data), "-o", str(tmp_path / "e.npy"), "--device", "cpu"]
    assert main(argv) == 2
    assert "latin.txt is not UTF-8" in capsys.readouterr().err
    assert main([*argv, "--skip-bad"]) == 0
    assert "skipped 1 text file (--skip-bad; unreadable): " in capsys.readouterr().err
    assert np.load(tmp_path / "e.npy").shape[0] == 20
