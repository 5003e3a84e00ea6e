"""A CRLF / lone-CR corpus: read_corpus (in-memory training, embed, predict, perplexity) reads the text that
masklab prepare tokenises (universal newlines), so both give the same token stream and no [UNK] for "\\r"."""

import numpy as np
import pytest

from masklab.data.lm import token_stream
from masklab.data.shards import PreparedCorpus
from masklab.data.shards.prepare import prepare_corpus
from masklab.data.text import read_corpus, read_text_file

DOCS = ["the cat sat\r\non the mat\r\n\r\nand the dog\r\n", "old mac\rline ends\rhere\r", "plain\nunix\n"]


@pytest.fixture
def crlf_folder(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    for i, doc in enumerate(DOCS):
        (root / f"{i}.txt").write_bytes(doc.encode("utf-8"))
    return root


def test_read_text_file_uses_universal_newlines(crlf_folder):
    assert read_text_file(crlf_folder / "0.txt") == "the cat sat\non the mat\n\nand the dog\n"
    assert read_text_file(crlf_folder / "1.txt") == "old mac\nline ends\nhere\n"


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece"])
@pytest.mark.parametrize("per", ["file", "line"])
def test_read_corpus_gives_the_prepared_stream(crlf_folder, tmp_path, kind, per):
    out = prepare_corpus(crlf_folder, tmp_path / "p", tokenizer_kind=kind, vocab_size=300, doc_per=per,
                         workers=1, progress=False)  # fmt: skip
    from masklab.tokenizers.text import TextTokenizer

    tok = TextTokenizer.load(out / "tokenizer.json")
    texts = read_corpus(crlf_folder, doc_per=per).texts
    assert not any("\r" in t for t in texts)
    want = token_stream(tok, texts, separator=tok.sep_id).numpy()
    corpus = PreparedCorpus(out)
    got, _ = corpus.read(0, len(corpus))
    assert np.array_equal(got, want)
    assert tok.role_id("unk") not in want.tolist()
