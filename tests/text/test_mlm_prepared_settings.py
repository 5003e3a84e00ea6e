"""An MLM trained on a prepared folder records how that folder read its documents (prepare.json's doc_per and
text_field, and the text it was prepared from), not the command's defaults: embed then reads the documents it
trained on (before, a folder prepared with --text-field body was embedded from the 'text' field, and
--doc-per line was recorded as auto). A run trained before that still resumes, and text.json is corrected."""

import json
import random

import numpy as np
import pytest

from masklab.data.shards.prepare import prepare_corpus
from masklab.recipes.common import TrainOptions
from masklab.recipes.mlm import pretrain_mlm
from masklab.recipes.mlm_tasks import embed_mlm

pytest.importorskip("tokenizers")

WORDS = ["the", "cat", "sat", "on", "mat", "red", "door", "ran", "then", "and"]
TRAIN = dict(preset="bert-tiny", seq_len=16, holdout=0.1)


def _options(steps):
    return TrainOptions(steps=steps, batch_size=4, device="cpu")


def _jsonl(path, n=30):
    rng = random.Random(0)
    rows = [{"body": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))), "text": "QQQQ XXXX ZZZZ"}
            for _ in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prepared_text_field_is_recorded_and_embed_reads_it(tmp_path):
    data = _jsonl(tmp_path / "c.jsonl")
    prepared = prepare_corpus(data, tmp_path / "pj", text_field="body", vocab_size=60, workers=1, progress=False)
    run = tmp_path / "run"
    pretrain_mlm(run, data=str(prepared), train=_options(2), **TRAIN)
    info = json.loads((run / "text.json").read_text())
    assert info["text_field"] == "body" and info["source"] == str(data.resolve())
    for given in (None, str(data), str(prepared)):  # the run's own data, the source file, the prepared folder
        emb = embed_mlm(run, data=given, device="cpu")
        assert len(emb.features) == 30
        assert len(np.unique(np.round(emb.features, 5), axis=0)) > 1  # not 30 copies of the 'text' field


def test_prepared_doc_per_line_is_recorded(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text("\n".join(" ".join(WORDS[j : j + 4]) for j in range(6)) + "\n")
    prepared = prepare_corpus(folder, tmp_path / "p", doc_per="line", vocab_size=60, workers=1, progress=False)
    run = tmp_path / "run"
    pretrain_mlm(run, data=str(prepared), train=_options(2), **TRAIN)
    assert json.loads((run / "text.json").read_text())["doc_per"] == "line"
    assert len(embed_mlm(run, device="cpu").features) == 18  # one row per line, not per file


def test_a_run_that_recorded_the_defaults_still_resumes(tmp_path):
    data = _jsonl(tmp_path / "c.jsonl")
    prepared = prepare_corpus(data, tmp_path / "pj", text_field="body", vocab_size=60, workers=1, progress=False)
    run = tmp_path / "run"
    pretrain_mlm(run, data=str(prepared), train=_options(2), **TRAIN)
    info = json.loads((run / "text.json").read_text())
    info["text_field"] = "text"  # what a run trained before recorded
    del info["source"]
    (run / "text.json").write_text(json.dumps(info))
    pretrain_mlm(run, data=str(prepared), train=_options(4), resume=True, **TRAIN)
    info = json.loads((run / "text.json").read_text())
    assert info["text_field"] == "body" and info["source"] == str(data.resolve())
