"""Text readers: a non-UTF-8 file is named with the byte offset in the file (not "of a read block") and its
line, plus the iconv hint; a folder of .txt.gz files says gzip is not read (not just "the corpus is empty");
a raw U+2028 / U+0085 inside a .jsonl string is read by the in-memory reader as by the streaming one."""

import gzip
import json

import pytest

from masklab.data.shards.prepare import iter_documents, prepare_corpus
from masklab.data.text import read_corpus


def test_non_utf8_names_the_file_offset_and_line(tmp_path):
    path = tmp_path / "big.txt"
    head = ("a line of plain text\n" * 2000).encode()  # past the first read block
    path.write_bytes(head + b"caf\xe9 au lait\n")
    with pytest.raises(ValueError) as info:
        list(iter_documents(path))
    message = str(info.value)
    assert f"offset {len(head) + 3}" in message and "line 2001" in message
    assert "read block" not in message and "iconv" in message and str(path) in message


def test_gzip_folder_says_what_was_ignored(tmp_path):
    folder = tmp_path / "gz"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.txt.gz").write_bytes(gzip.compress(b"some text\n"))
    for reader in (lambda: read_corpus(folder), lambda: prepare_corpus(folder, tmp_path / "out", progress=False)):
        with pytest.raises(ValueError) as info:
            reader()
        message = str(info.value)
        assert "a.txt.gz" in message and "gzip" in message and ".txt" in message and ".jsonl" in message


@pytest.mark.parametrize("separator", ["\u2028", "\u0085", "\u2029"])
def test_jsonl_with_unicode_line_separators_in_strings(tmp_path, separator):
    path = tmp_path / "docs.jsonl"
    records = [{"text": f"first{separator}half"}, {"text": "second"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert corpus.texts == [r["text"] for r in records] == list(iter_documents(path))
    assert corpus.sources == [f"{path}:1", f"{path}:2"]
