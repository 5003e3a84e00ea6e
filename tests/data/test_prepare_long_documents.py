"""prepare's memory with long documents: the tokenizer's training sample stops at ``--sample-mb`` within a
document (a whole document was taken before the budget was checked), and a document over ``LONG_DOCUMENT``
bytes is warned about (it is encoded in one call)."""

import warnings

import pytest

from masklab.data.shards import prepare
from masklab.data.shards.prepare import _sample


def test_sample_is_capped_within_a_document():
    docs = ["word " * 100, "long " * 1_000_000, "never"]
    sample = list(_sample(iter(docs), 2_000))
    assert sum(len(d.encode()) for d in sample) <= 2_000
    assert sample[0] == docs[0] and sample[1].startswith("long ") and sample[1].endswith("long")


def test_sample_cut_keeps_whole_characters():
    sample = list(_sample(iter(["é" * 10]), 5))
    assert sample == ["éé"]


def test_long_document_is_warned_about(tmp_path, monkeypatch):
    pytest.importorskip("tokenizers")
    monkeypatch.setattr(prepare, "LONG_DOCUMENT", 1000)
    src = tmp_path / "one.txt"
    src.write_text("short line\n" + "word " * 400 + "\n", encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare.prepare_corpus(src, tmp_path / "out", tokenizer_kind="char", workers=1, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("2000 bytes" in m and "one call" in m for m in messages), messages
