"""Text data: readers and their errors, built-ins, splits, packing and the fit dataset."""

import json
from collections import Counter

import pytest
import torch

from masklab.data.text import (
    TextBlocksData,
    encode_truncated,
    holdout_split,
    load_builtin,
    load_text_corpus,
    pack_sequences,
    read_corpus,
    stratified_split,
)
from masklab.tokenizers.text import Encoded


def test_txt_file_per_line_and_per_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("first line\n\nsecond line\n", encoding="utf-8")
    assert read_corpus(path).texts == ["first line", "second line"]  # auto: a single file -> lines
    assert read_corpus(path, doc_per="file").texts == ["first line\n\nsecond line\n"]


def test_folder_of_class_subfolders_gives_labels(tmp_path):
    for label, texts in {"sport": ["goal", "match"], "tech": ["chip"]}.items():
        (tmp_path / label).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "tech" / "notes.md").write_text("ignored")
    corpus = read_corpus(tmp_path)
    assert corpus.texts == ["goal", "match", "chip"]
    assert corpus.label_names == ("sport", "tech") and corpus.labels == [0, 0, 1]
    assert len(corpus.skipped) == 1 and "notes.md" in corpus.skipped[0]


def test_jsonl_text_and_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "hello", "label": "b"}, {"text": "world", "label": "a"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    corpus = load_text_corpus(str(path))
    assert corpus.texts == ["hello", "world"] and corpus.labels == [1, 0] and corpus.label_names == ("a", "b")


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_corpus(tmp_path / "missing.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("  \n")
    with pytest.raises(ValueError, match="corpus is empty"):
        read_corpus(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("price £5".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.txt is not UTF-8 .* offset 6"):
        read_corpus(latin)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a JSON object with a string 'text'"):
        read_corpus(bad)
    partial = tmp_path / "partial.jsonl"
    partial.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="document 1 has no label"):
        read_corpus(partial)
    other = tmp_path / "data.csv"
    other.write_text("a,b")
    with pytest.raises(ValueError, match=r"expected a \.txt or \.jsonl"):
        read_corpus(other)
    with pytest.raises(ValueError, match="unknown built-in dataset"):
        load_text_corpus("builtin:wikipedia")


def test_builtins():
    bbc = load_builtin("bbc-news")
    assert len(bbc) == 2225
    assert bbc.label_names == ("business", "entertainment", "politics", "sports", "tech")
    assert Counter(bbc.labels) == {0: 510, 1: 386, 2: 417, 3: 511, 4: 401}
    assert any("£" in t for t in bbc.texts)  # the cp1252 file is decoded, not dropped
    shakespeare = load_builtin("shakespeare")
    assert len(shakespeare) == 42 and shakespeare.labels is None
    assert any(t.startswith("HAMLET") for t in shakespeare.texts)


def test_splits_are_seeded_disjoint_and_stratified():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    train, test = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + test) == list(range(100))
    assert Counter(labels[i] for i in test) == {0: 10, 1: 6, 2: 4}
    assert stratified_split(labels, 0.2, seed=3) == (train, test)
    assert stratified_split(labels, 0.2, seed=4) != (train, test)
    keep, held = holdout_split(100, 0.1, seed=0)
    assert len(held) == 10 and not set(keep) & set(held)


def _doc(n: int, start: int) -> Encoded:
    # Words of two pieces each: ids start, start+1, ...
    return Encoded(list(range(start, start + n)), [i // 2 for i in range(n)])


def test_pack_sequences_frames_every_row_and_keeps_every_token():
    docs = [_doc(7, 10), _doc(5, 100), _doc(9, 200)]
    blocks = pack_sequences(docs, 8, cls_id=2, sep_id=3, pad_id=0)
    ids, padding, words = blocks.ids, blocks.padding, blocks.word_ids
    assert ids.shape[1] == 8 and torch.equal(ids[:, 0], torch.full((len(ids),), 2))
    lengths = (~padding).sum(1)
    assert torch.equal(ids[torch.arange(len(ids)), lengths - 1], torch.full((len(ids),), 3))
    assert bool(padding[:-1].logical_not().all()) and bool(padding[-1].any())  # only the last row is padded
    body = torch.cat([row[1 : n - 1] for row, n in zip(ids, lengths, strict=True)]).tolist()
    # Documents in order, one [SEP] between consecutive documents.
    assert body == [*range(10, 17), 3, *range(100, 105), 3, *range(200, 209)]
    assert bool((words[padding] == -1).all()) and bool((words[ids == 3] == -1).all())
    assert bool((words[:, 0] == -1).all())
    # Word ids never repeat across documents within a row.
    row = words[1][words[1] >= 0]
    assert torch.equal(row, torch.sort(row).values)


def test_encode_truncated_and_batches():
    docs = [_doc(3, 10), _doc(20, 50)]
    blocks = encode_truncated(docs, 6, cls_id=2, sep_id=3, pad_id=0, labels=[1, 0])
    assert blocks.ids.tolist() == [[2, 10, 11, 12, 3, 0], [2, 50, 51, 52, 53, 3]]
    assert blocks.padding.tolist()[0] == [False] * 5 + [True]
    data = TextBlocksData(blocks)
    batch = data.get_batch(torch.tensor([0]))
    assert batch["ids"].shape == (1, 5) and batch["labels"].tolist() == [1]  # trimmed to the longest row
    with pytest.raises(ValueError, match="--seq-len must be >= 3"):
        encode_truncated(docs, 2, cls_id=2, sep_id=3, pad_id=0)
    with pytest.raises(ValueError, match="nothing to pack"):
        pack_sequences([Encoded([], [])], 8, cls_id=2, sep_id=3, pad_id=0)
