"""CLM ``perplexity``, ``embed`` and ``probe`` read the run's data as the run did: its ``--text-field`` (and a
prepared ``--data``'s settings), recorded in lm.json. Before, they read the ``text`` field whatever the run
trained on: perplexity scored 896 tokens of other text against the run's 672 held-out ones, and embed gave
identical rows (every ``text`` the same). The run's own ``val`` / ``train`` split is read from its prepared
stream: exactly the tokens it held out / trained on."""

import json
import random

import numpy as np
import pytest

from masklab.cli import main

pytest.importorskip("tokenizers")

WORDS = ["sat", "ran", "door", "red", "cat", "a", "then", "to", "and", "on", "the", "mat", "it"]
SMALL = ["--context", "16", "--dim", "32", "--depth", "1", "--heads", "2", "--steps", "3", "--batch-size", "4",
         "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("clm-field")
    rng = random.Random(0)
    rows = [{"body": " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 30))), "text": "QQQQ XXXX " * 10,
             "label": "ab"[i % 2]} for i in range(60)]  # fmt: skip
    (root / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def run(corpus):
    out = corpus / "run"
    assert main(["pretrain", "clm", "--data", str(corpus / "c.jsonl"), "--text-field", "body", "--out", str(out),
                 *SMALL]) == 0  # fmt: skip
    return out


def _perplexity(capsys, *args):
    capsys.readouterr()
    assert main(["perplexity", *map(str, args), "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lm_json_records_how_the_documents_were_read(run):
    info = json.loads((run / "lm.json").read_text())
    assert (info["text_field"], info["doc_per"]) == ("body", "auto")


def test_perplexity_scores_the_runs_own_held_out_and_training_tokens(run, capsys):
    info = json.loads((run / "lm.json").read_text())
    saved = json.loads((run / "eval.json").read_text())["val"]
    val = _perplexity(capsys, run)
    assert val["tokens"] == saved["tokens"] == (info["val_tokens"] - 1) // 16 * 16
    assert val["loss"] == pytest.approx(saved["loss"], rel=1e-5)
    assert f"positions {info['train_tokens']:,} to {info['tokens']:,}" in val["scored"]
    train = _perplexity(capsys, run, "--split", "train")
    assert train["tokens"] == (info["train_tokens"] - 1) // 16 * 16
    # the raw file again, read with the run's text field: the whole stream the run was prepared from
    every = _perplexity(capsys, run, "--data", run.parent / "c.jsonl")
    assert every["tokens"] == (info["tokens"] - 1) // 16 * 16 and "'body'" in every["scored"]


def test_embed_and_probe_read_the_runs_text_field(run, tmp_path, capsys):
    assert main(["embed", str(run), "-o", str(tmp_path / "emb.npy"), "--device", "cpu"]) == 0
    rows = np.load(tmp_path / "emb.npy")
    assert rows.shape[0] == 60 and len(np.unique(rows.round(5), axis=0)) > 30  # not 60 copies of one row
    capsys.readouterr()
    assert main(["probe", str(run), "--device", "cpu"]) == 0
    assert "probe trained on 48 documents" in capsys.readouterr().out


def test_a_prepared_data_folder_is_read_with_its_own_settings(corpus, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    assert main(["prepare", "--data", str(corpus / "c.jsonl"), "--text-field", "body", "--tokenizer-kind", "char",
                 "--cased", "--out", str(prepared), "--workers", "1"]) == 0  # fmt: skip
    out = tmp_path / "run"
    assert main(["pretrain", "clm", "--data", str(prepared), "--out", str(out), *SMALL]) == 0
    info = json.loads((out / "lm.json").read_text())
    assert info["text_field"] == "body"
    val = _perplexity(capsys, out)
    assert val["tokens"] == json.loads((out / "eval.json").read_text())["val"]["tokens"]
    assert str(prepared) in val["scored"]
    assert main(["embed", str(out), "-o", str(tmp_path / "emb.npy"), "--device", "cpu"]) == 0
    assert len(np.unique(np.load(tmp_path / "emb.npy").round(5), axis=0)) > 30


def test_a_run_that_recorded_no_text_field_still_loads_and_resumes(corpus, tmp_path, capsys):
    out = tmp_path / "old"
    assert main(["pretrain", "clm", "--data", str(corpus / "c.jsonl"), "--out", str(out), *SMALL]) == 0
    info = json.loads((out / "lm.json").read_text())
    del info["text_field"], info["doc_per"]  # lm.json as runs wrote it before
    (out / "lm.json").write_text(json.dumps(info))
    assert _perplexity(capsys, out, "--data", corpus / "c.jsonl")["tokens"] > 0  # the default field, text
    assert main(["pretrain", "clm", "--out", str(out), "--resume", "--steps", "4", "--device", "cpu"]) == 0
    assert json.loads((out / "lm.json").read_text())["text_field"] == "text"
