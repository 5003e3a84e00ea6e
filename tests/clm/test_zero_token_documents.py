"""Documents that encode to no token (here: a zero-width space, which BERT's normaliser strips). ``masklab
prepare`` leaves them out; the in-memory LM stream (built-in corpora, ``perplexity --data``) put a separator
for each, two in a row, which moved perplexity's validation cut. CLM ``embed`` fed such a document as the pad
id 0, a token it does not hold, and cut long documents to the context without saying so (MLM's says)."""

import json

import pytest

from masklab.cli import main
from masklab.data.lm import token_stream
from masklab.tokenizers.text import TextTokenizer

pytest.importorskip("tokenizers")

DOCS = ["the cat sat on the mat", "\u200b", "the mat sat", "\u200b\u200b", "on the cat"]


@pytest.fixture(scope="module")
def tok():
    return TextTokenizer.train(DOCS * 5, "wordpiece", vocab_size=60, min_frequency=1)


def test_token_stream_leaves_out_documents_with_no_token(tok, tmp_path):
    assert tok.encode(DOCS[1], add_special_tokens=False).ids == []
    stream = token_stream(tok, DOCS, separator=tok.sep_id).tolist()
    kept = [tok.encode(d, add_special_tokens=False).ids for d in DOCS if d.strip("\u200b")]
    assert stream == [*kept[0], tok.sep_id, *kept[1], tok.sep_id, *kept[2]]
    # the stream masklab prepare writes of the same documents
    from masklab.data.shards import PreparedCorpus
    from masklab.data.shards.prepare import prepare_corpus

    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    tok.save(tmp_path / "tok.json")
    folder = prepare_corpus(tmp_path / "d.jsonl", tmp_path / "p", tokenizer=tmp_path / "tok.json", workers=1)
    corpus = PreparedCorpus(folder)
    assert corpus.read(0, len(corpus))[0].tolist() == stream


@pytest.fixture(scope="module")
def run(tok, tmp_path_factory):
    root = tmp_path_factory.mktemp("clm-zero")
    long = " ".join(["the cat sat on the mat"] * 6)
    docs = [long if i % 2 else "the mat sat on the cat" for i in range(40)]
    (root / "train.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    tok.save(root / "tok.json")
    out = root / "run"
    assert main(["pretrain", "clm", "--data", str(root / "train.jsonl"), "--tokenizer", str(root / "tok.json"),
                 "--out", str(out), "--context", "16", "--dim", "16", "--depth", "1", "--heads", "2", "--steps", "1",
                 "--batch-size", "2", "--device", "cpu"]) == 0  # fmt: skip
    return out


def test_clm_embed_notes_documents_cut_to_the_context(run, tmp_path, capsys):
    capsys.readouterr()
    assert main(["embed", str(run), "-o", str(tmp_path / "e.npy"), "--device", "cpu"]) == 0
    assert "masklab: note: 20 of 40 documents are longer than the model reads (16 tokens" in capsys.readouterr().err


def test_clm_embed_refuses_a_document_with_no_token(run, tmp_path, capsys):
    (tmp_path / "odd.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS))
    capsys.readouterr()
    assert main(["embed", str(run), "--data", str(tmp_path / "odd.jsonl"), "-o", str(tmp_path / "o.npy"),
                 "--device", "cpu"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "documents 1 (" in err and "odd.jsonl:2), 3 (" in err
    errors = [line for line in err.splitlines() if line.startswith("masklab: error:")]
    assert len(errors) == 1 and "to no token" in errors[0] and "Traceback" not in err
    assert not (tmp_path / "o.npy").exists()
