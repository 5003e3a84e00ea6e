"""Text tokenizers: train WordPiece / byte-level BPE / character vocabularies, load ``tokenizer.json`` or
``vocab.txt``, encode with word ids, save next to a run. Model-agnostic (used by the MLM and the causal LM).

Everything is a thin wrapper over the Hugging Face ``tokenizers`` library (Rust, fast batch encoding), so a
saved ``tokenizer.json`` loads unchanged in ``transformers`` (``PreTrainedTokenizerFast(tokenizer_file=...)``).

Special tokens are found by *role* (``pad``, ``unk``, ``cls``, ``sep``, ``mask``) under BERT spellings
(``[PAD]`` ...) or RoBERTa/GPT spellings (``<pad>``, ``<s>``, ``</s>``, ``<mask>``, ``<|endoftext|>``); a role
the vocabulary lacks is None. Word ids: pieces of one pre-tokenized word share an id >= 0, special tokens get
-1 (the layout :func:`masklab.masks.generators.whole_word_masking` expects), for every tokenizer kind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TokenizerKind = Literal["wordpiece", "bpe", "char"]
TOKENIZER_FILE = "tokenizer.json"

# Role -> spellings we recognise, first match wins. BERT's first, then RoBERTa's, then GPT-2's.
_ROLE_SPELLINGS: dict[str, tuple[str, ...]] = {
    "pad": ("[PAD]", "<pad>"),
    "unk": ("[UNK]", "<unk>"),
    "cls": ("[CLS]", "<s>", "<|endoftext|>"),
    "sep": ("[SEP]", "</s>", "<|endoftext|>"),
    "mask": ("[MASK]", "<mask>"),
}
_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_ROBERTA_SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<mask>"]


@dataclass(frozen=True)
class Encoded:
    """One encoded text: ``ids`` and ``word_ids`` (same length; -1 marks special tokens)."""

    ids: list[int]
    word_ids: list[int]


def _with_template(tok: Tokenizer, cls: str, sep: str) -> Tokenizer:
    """Add BERT's ``[CLS] A [SEP]`` framing (RoBERTa's ``<s> A </s>``); it needs the ids, so build it last."""
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    return tok


def _train_wordpiece(texts: Iterable[str], vocab_size: int, lowercase: bool, min_frequency: int) -> Tokenizer:
    # BERT's pipeline (Devlin et al. 2019): clean + lowercase + split punctuation, then greedy longest-match
    # WordPiece with the "##" continuation prefix.
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=_BERT_SPECIALS, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    return _with_template(_canonical_wordpiece_ids(tok), "[CLS]", "[SEP]")


def _canonical_wordpiece_ids(tok: Tokenizer) -> Tokenizer:
    """Renumber a trained WordPiece vocabulary in a fixed order, so the same corpus always gives the same ids.

    The ``tokenizers`` WordPiece trainer numbers the ``##x`` continuation letters in the iteration order of a
    Rust ``HashMap`` (randomly seeded per map), and merges of equal count in an order that follows those ids:
    two trainings on one corpus learn the same pieces under different ids (no trainer option fixes it;
    ``RAYON_NUM_THREADS=1`` does not either). WordPiece encodes by vocabulary lookup only, so the id order
    carries no meaning: special tokens keep their ids, every other piece is numbered by (length without the
    ``##`` prefix, word-start before continuation, text). Not fixed here: when pairs of equal count compete for
    the last places, which of them the trainer merges can still vary (seen on small corpora).
    """
    state = json.loads(tok.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    prefix = state["model"].get("continuing_subword_prefix") or "##"
    specials = sorted((i, t) for t, i in vocab.items() if t in _BERT_SPECIALS)
    if [i for i, _ in specials] != list(range(len(specials))):
        return tok  # not the layout the trainer makes (specials first): leave it as it is

    def key(piece: str) -> tuple[int, bool, str]:
        cont = piece.startswith(prefix)
        return len(piece) - (len(prefix) if cont else 0), cont, piece

    rest = sorted((t for t in vocab if t not in _BERT_SPECIALS), key=key)
    state["model"]["vocab"] = {t: i for i, t in enumerate([t for _, t in specials] + rest)}
    return Tokenizer.from_str(json.dumps(state, ensure_ascii=False))


def _train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    # Byte-level BPE (GPT-2 / RoBERTa): every byte is in the base alphabet, so nothing is ever [UNK].
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=_ROBERTA_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    # RoBERTa's <mask> swallows the space before it, so "a <mask> b" masks the word, not a lone "Ġ".
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return _with_template(tok, "<s>", "</s>")


def _train_char(texts: Iterable[str], lowercase: bool) -> Tokenizer:
    # The vocabulary is the characters the encoder sees: lowercased by the same normalizer (Rust's per-character
    # lowercase keeps a word-final "Σ" a "σ"; Python's str.lower makes it "ς", which encoding never produces).
    normalizer = normalizers.Lowercase() if lowercase else None
    chars: set[str] = set()
    for text in texts:
        chars.update(text if normalizer is None else normalizer.normalize_str(text))
    vocab = {token: i for i, token in enumerate(_BERT_SPECIALS)}
    for ch in sorted(chars):
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character, "\n" too
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(_BERT_SPECIALS)
    return _with_template(tok, "[CLS]", "[SEP]")


# What Rust's str::trim_end strips (Unicode White_Space): the tokenizers library's WordPiece.read_file, which
# Hugging Face's BertTokenizer(Fast) loads vocab.txt with, trims each line so.
_VOCAB_LINE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)


def _read_vocab_txt(path: Path) -> dict[str, int]:
    """``vocab.txt`` as Hugging Face reads it (``tokenizers``' ``WordPiece.read_file``): one token per ``\\n``
    line (a line's ``\\r\\n`` end and trailing white space dropped), id = line index. A token on two lines is
    an error naming both: Hugging Face keeps the later line's id and leaves the earlier one a hole."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: vocab.txt is not UTF-8 ({err})") from err
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the last line starts no line of its own
        lines.pop()
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        token = line.rstrip(_VOCAB_LINE_SPACE)
        if token in vocab:
            raise ValueError(f"{path}: lines {vocab[token] + 1} and {index + 1} both hold the token {token!r} "
                             "(a vocab.txt needs one line per id); remove one")  # fmt: skip
        vocab[token] = index
    return vocab


def _bert_config(path: Path, lowercase: bool | None) -> dict[str, bool | None]:
    """The ``BertNormalizer`` settings Hugging Face takes from the ``tokenizer_config.json`` beside ``path``:
    ``do_lower_case`` (default True; ``lowercase`` overrides it), ``strip_accents`` (None: as lowercase) and
    ``tokenize_chinese_chars`` (default True). A value it cannot mean is an error naming the key."""
    config_path = path.with_name("tokenizer_config.json")
    config = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{config_path}: not a JSON tokenizer config ({err})") from err
        if not isinstance(config, dict):
            raise ValueError(f"{config_path}: expected a JSON object")
    settings = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True}
    for key, default in settings.items():
        value = config.get(key, default)
        if not isinstance(value, bool) and not (key == "strip_accents" and value is None):
            allowed = "true, false or null" if key == "strip_accents" else "true or false"
            raise ValueError(f"{config_path}: {key} must be {allowed}, got {value!r}")
        settings[key] = value
    if config.get("do_basic_tokenize") is False:  # BERT's slow tokenizer only; the fast pipeline always splits
        raise ValueError(f"{config_path}: do_basic_tokenize false is not supported (BERT's pre-tokenizer always runs)")
    if lowercase is not None:
        settings["do_lower_case"] = lowercase
    return settings


def _wordpiece_from_vocab_txt(path: Path, lowercase: bool | None) -> Tokenizer:
    """BERT's ``vocab.txt`` (one piece a line, line number = id) -> the pipeline ``BertTokenizerFast`` builds,
    normalised as its ``tokenizer_config.json`` says (:func:`_bert_config`)."""
    vocab = _read_vocab_txt(path)
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]") if t not in vocab]
    if not vocab or missing:
        raise ValueError(f"{path}: not a BERT vocab.txt (missing {missing or 'every token'})")
    config = _bert_config(path, lowercase)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=bool(config["tokenize_chinese_chars"]),
        strip_accents=config["strip_accents"],
        lowercase=bool(config["do_lower_case"]),
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens([t for t in _BERT_SPECIALS if t in vocab])
    return _with_template(tok, "[CLS]", "[SEP]")


def _bpe_from_vocab_merges(vocab: Path, merges: Path) -> Tokenizer:
    """RoBERTa / GPT-2 ``vocab.json`` + ``merges.txt`` -> the byte-level BPE pipeline ``RobertaTokenizerFast``
    builds (no prefix space, ``<s> A </s>`` framing, ``<mask>`` swallowing the space before it)."""
    try:
        tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    except Exception as err:  # the Rust side raises a bare Exception with its own parse message
        raise ValueError(f"{vocab.parent}: not a byte-level BPE vocab.json + merges.txt ({err})") from err
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    present = [t for t in _ROBERTA_SPECIALS if tok.token_to_id(t) is not None and t != "<mask>"]
    tok.add_special_tokens([AddedToken(t, special=True) for t in present])
    if tok.token_to_id("<mask>") is not None:
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    if tok.token_to_id("<s>") is None or tok.token_to_id("</s>") is None:
        raise ValueError(f"{vocab}: a RoBERTa vocab.json needs <s> and </s>")
    return _with_template(tok, "<s>", "</s>")


class TextTokenizer:
    """A trained subword / character tokenizer with special-token roles and word ids.

    Build one with :meth:`train` or :meth:`load`; :meth:`save` writes ``tokenizer.json``.
    """

    def __init__(self, backend: Tokenizer) -> None:
        # We truncate, pad and pack ourselves; a shipped tokenizer.json may carry its own settings (MiniLM's
        # pads every text to 128), which would silently change lengths.
        backend.no_truncation()
        backend.no_padding()
        self.backend = backend
        specials = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
        self._role_ids: dict[str, int | None] = {}
        for role, spellings in _ROLE_SPELLINGS.items():
            found = next((s for s in spellings if s in specials or backend.token_to_id(s) is not None), None)
            self._role_ids[role] = None if found is None else backend.token_to_id(found)
        ids = {backend.token_to_id(s) for s in specials} | {i for i in self._role_ids.values() if i is not None}
        self.special_ids: tuple[int, ...] = tuple(sorted(i for i in ids if i is not None))

    # ------------------------------------------------------------------ construction
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        kind: TokenizerKind = "wordpiece",
        *,
        vocab_size: int = 8000,
        lowercase: bool = True,
        min_frequency: int = 2,
    ) -> TextTokenizer:
        """Learn a vocabulary from ``texts``. ``kind``: ``wordpiece`` (BERT), ``bpe`` (byte-level, RoBERTa /
        GPT-2; ``lowercase`` is ignored: byte-level BPE keeps case) or ``char`` (one token per character;
        ``vocab_size`` is ignored).

        Not reproducible bit for bit: the ``tokenizers`` trainer breaks ties between WordPiece / BPE merges of
        equal count in an order that varies from process to process, so on a small corpus (where such ties
        are common) two runs may learn different vocabularies. ``char`` is deterministic. Save the result
        (:meth:`save`) and load it to get the same ids again."""
        if kind not in ("wordpiece", "bpe", "char"):
            raise ValueError(f"tokenizer kind must be wordpiece, bpe or char, got {kind!r}")
        if kind != "char" and vocab_size < len(_BERT_SPECIALS) + 1:
            raise ValueError(f"vocab_size must be > {len(_BERT_SPECIALS)}, got {vocab_size}")
        texts = list(texts)
        if not any(t.strip() for t in texts):
            raise ValueError("cannot train a tokenizer on an empty corpus (no non-blank text)")
        if kind == "wordpiece":
            return cls(_train_wordpiece(texts, vocab_size, lowercase, min_frequency))
        if kind == "bpe":
            return cls(_train_bpe(texts, vocab_size, min_frequency))
        return cls(_train_char(texts, lowercase))

    @classmethod
    def load(cls, path: str | Path, *, lowercase: bool | None = None) -> TextTokenizer:
        """Load ``tokenizer.json``, BERT ``vocab.txt``, or a folder holding one of them or RoBERTa's
        ``vocab.json`` + ``merges.txt`` (``tokenizer.json`` preferred).

        ``lowercase`` applies to ``vocab.txt`` only (default: ``do_lower_case`` from a ``tokenizer_config.json``
        beside it, else True).
        """
        path = Path(path).expanduser()
        if path.is_dir():
            for name in (TOKENIZER_FILE, "vocab.txt"):
                if (path / name).is_file():
                    return cls.load(path / name, lowercase=lowercase)
            if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
                return cls(_bpe_from_vocab_merges(path / "vocab.json", path / "merges.txt"))
            raise FileNotFoundError(f"{path} holds none of {TOKENIZER_FILE}, vocab.txt, vocab.json + merges.txt")
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file {path} does not exist")
        if path.suffix == ".txt":
            return cls(_wordpiece_from_vocab_txt(path, lowercase))
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as err:  # the Rust side raises a bare Exception with its own parse message
            raise ValueError(f"{path}: not a valid tokenizer.json ({err})") from err

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (``path`` may be a directory) atomically; returns the file path."""
        from masklab.core.io import atomic_write_bytes

        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / TOKENIZER_FILE
        return atomic_write_bytes(path, self.to_json().encode("utf-8"))

    def to_json(self) -> str:
        return self.backend.to_str()

    @property
    def fingerprint(self) -> str:
        """sha256 of the vocabulary in id order: equal fingerprints give equal ids for every token."""
        vocab = sorted(self.backend.get_vocab(with_added_tokens=True).items(), key=lambda kv: kv[1])
        return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """Number of ids (added tokens included); the embedding table needs exactly this many rows."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def role_id(self, role: str) -> int | None:
        """Id of the special token with ``role`` (pad, unk, cls, sep, mask), or None if the vocab lacks it."""
        if role not in self._role_ids:
            raise ValueError(f"unknown special-token role {role!r}; known: {sorted(self._role_ids)}")
        return self._role_ids[role]

    def require(self, role: str) -> int:
        """Like :meth:`role_id` but a ``ValueError`` when the vocabulary has no such token."""
        found = self.role_id(role)
        if found is None:
            raise ValueError(f"the tokenizer has no {role} token (looked for {', '.join(_ROLE_SPELLINGS[role])})")
        return found

    @property
    def pad_id(self) -> int:
        return self.require("pad")

    @property
    def mask_id(self) -> int:
        return self.require("mask")

    @property
    def cls_id(self) -> int:
        return self.require("cls")

    @property
    def sep_id(self) -> int:
        return self.require("sep")

    @property
    def mask_token(self) -> str:
        token = self.backend.id_to_token(self.mask_id)
        if token is None:
            raise ValueError(f"the tokenizer has no token for mask id {self.mask_id}")
        return token

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str:
        token = self.backend.id_to_token(int(token_id))
        if token is None:
            raise ValueError(f"token id {token_id} is outside the vocabulary (size {self.vocab_size})")
        return token

    # ------------------------------------------------------------------ encoding
    def encode(self, text: str, *, add_special_tokens: bool = True) -> Encoded:
        return self.encode_batch([text], add_special_tokens=add_special_tokens)[0]

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[Encoded]:
        """Encode many texts in parallel (Rust threads). Special tokens get word id -1."""
        out = []
        special = set(self.special_ids)
        for enc in self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens):
            # A special token typed inside a text ("[MASK]") has a word id from the pre-tokenizer; it is
            # still a special token, never part of a word.
            words = [-1 if w is None or i in special else w for i, w in zip(enc.ids, enc.word_ids, strict=True)]
            out.append(Encoded(list(enc.ids), words))
        return out

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"TextTokenizer({model}, vocab_size={self.vocab_size})"
