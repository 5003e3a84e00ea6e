"""A BERT vocab.txt + tokenizer_config.json loads as Hugging Face's AutoTokenizer reads them: one token per
"\\n" line with id = line index (lines with \\x0c, a lone \\r, U+2028 or trailing white space included), and
do_lower_case, strip_accents and tokenize_chinese_chars all honoured; full id arrays compared."""

import json

import pytest

from masklab.tokenizers.text import TextTokenizer

transformers = pytest.importorskip("transformers")

# Lines that str.splitlines() would split or that a setdefault numbering would shift: every token after them
# kept its id only if each "\n" line is one id.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "café", "naive", "naïve", "東", "京", "東京",
         "a\x0cb", "x\rz", "\u2028", "crlf\r", "t ", "p\x1c", "r\x85", "the", "##s", "x", "y", "z", "q", "caf", "##é",
         "##e", "nai", "##ve", "##ïve", "na", "##ï"]  # fmt: skip
TEXTS = ["Naïve café 東京 the x y z q", "NAÏVE Café 東京東京 thes", "cafe naive t q"]
CONFIGS = [
    {},
    {"do_lower_case": True, "strip_accents": False},
    {"do_lower_case": True, "tokenize_chinese_chars": False},
    {"do_lower_case": False},
    {"do_lower_case": False, "strip_accents": True},
    {"do_lower_case": False, "strip_accents": None, "tokenize_chinese_chars": False},
    {"do_lower_case": True, "strip_accents": True, "tokenize_chinese_chars": True},
]


def _folder(tmp_path, config, vocab=VOCAB):
    (tmp_path / "vocab.txt").write_bytes(("\n".join(vocab) + "\n").encode("utf-8"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", **config}))
    return tmp_path


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: json.dumps(c))
def test_vocab_txt_and_config_match_autotokenizer(tmp_path, config):
    folder = _folder(tmp_path, config)
    mine = TextTokenizer.load(folder)
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert mine.backend.get_vocab() == hf.backend_tokenizer.get_vocab()
    assert mine.token_to_id("q") == VOCAB.index("q")
    for text in TEXTS:
        assert mine.encode(text).ids == hf(text)["input_ids"], text


def test_a_token_on_two_lines_is_refused_naming_them(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "the ", "sat"]  # "the " trims to "the"
    folder = _folder(tmp_path, {}, vocab)
    with pytest.raises(ValueError, match=r"lines 6 and 8 both hold the token 'the'"):
        TextTokenizer.load(folder / "vocab.txt")


@pytest.mark.parametrize(
    ("config", "key"),
    [({"strip_accents": "yes"}, "strip_accents"), ({"do_lower_case": 1}, "do_lower_case"),
     ({"tokenize_chinese_chars": None}, "tokenize_chinese_chars"), ({"do_basic_tokenize": False}, "do_basic_tokenize")],
)  # fmt: skip
def test_a_setting_that_cannot_be_honoured_is_refused_naming_the_key(tmp_path, config, key):
    folder = _folder(tmp_path, config)
    with pytest.raises(ValueError, match=key):
        TextTokenizer.load(folder)


def test_lowercase_argument_overrides_do_lower_case(tmp_path):
    folder = _folder(tmp_path, {"do_lower_case": False, "strip_accents": False})
    hf = transformers.AutoTokenizer.from_pretrained(str(folder), do_lower_case=True)
    mine = TextTokenizer.load(folder, lowercase=True)
    assert mine.encode(TEXTS[1]).ids == hf(TEXTS[1])["input_ids"]
