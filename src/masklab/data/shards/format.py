"""The prepared-shard format on disk and its reader: token ids, word ids and document starts, memory-mapped.

A prepared corpus is a folder::

    index.json            format, token dtype, tokenizer fingerprint, per-shard sizes and sha256
    tokenizer.json        the tokenizer the ids come from
    shard-00000.bin ...   one file per shard: ids (uint16 | uint32, n_tokens) ++ word ids (int32, n_tokens)
                          ++ document starts (int64, n_docs), each array at the offset the index gives

The token stream of a shard is every document's ids followed by the separator token (``sep_id``), so the
corpus stream is the shards concatenated, minus the very last separator: exactly the stream
:func:`masklab.data.text.pack_sequences` and :func:`masklab.data.lm.token_stream` build in memory (the nanoGPT
``np.memmap`` idea, with Hugging Face ``run_mlm.py``'s tokenise-once). Word ids count up within a shard
(pieces of one word share an id, the separator has -1); the reader adds each shard's offset so ids stay unique
along the whole stream. Only numpy is needed here (DataLoader workers and prepare workers import this).
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

FORMAT = "masklab-shards/1"
INDEX_NAME = "index.json"
TOKENIZER_NAME = "tokenizer.json"
WORD_DTYPE = np.dtype("<i4")
DOC_DTYPE = np.dtype("<i8")


class ShardError(ValueError):
    """A prepared corpus is missing, incomplete, truncated or corrupted (the message names the file)."""


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.bin"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocab <= 65,536), else uint32: half the disk and page cache for most vocabs."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def encode_shard(ids: np.ndarray, words: np.ndarray, doc_starts: np.ndarray, dtype: np.dtype) -> bytes:
    """The bytes of one shard file (see the module docstring)."""
    return ids.astype(dtype).tobytes() + words.astype(WORD_DTYPE).tobytes() + doc_starts.astype(DOC_DTYPE).tobytes()


def file_sha256(path: Path, chunk: int = 1 << 23) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ShardInfo:
    """One shard as the index records it."""

    name: str
    tokens: int  # ids in the shard (separators included)
    docs: int
    words: int  # word ids used (the next shard's offset adds this)
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_index(root: Path) -> dict[str, Any]:
    path = root / INDEX_NAME
    if not path.is_file():
        raise ShardError(f"{root} is not a prepared corpus (no {INDEX_NAME}; run masklab prepare, or it was killed)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ShardError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise ShardError(
            f"{path}: expected format {FORMAT!r}, got {index.get('format') if isinstance(index, dict) else index!r}"
        )
    return index


def is_prepared(path: str | Path) -> bool:
    return (Path(path) / INDEX_NAME).is_file()


def check_tokenizer(root: Path, index: dict[str, Any]) -> None:
    """Refuse a ``tokenizer.json`` that is not the one the shards' ids come from: its vocabulary's sha256 must
    be the index's ``tokenizer_sha256`` (and the file's own sha256 ``tokenizer_file_sha256``, where the index
    records it). A replaced tokenizer would train a model of another vocabulary on these ids."""
    path = root / TOKENIZER_NAME
    replaced = f"{path} is not the tokenizer {root / INDEX_NAME} was prepared with; restore it, or prepare {root} again"
    if not path.is_file():
        raise ShardError(f"{path} is missing: {root} has no tokenizer for its token ids; restore it, or prepare again")
    if index.get("tokenizer_file_sha256") not in (None, file_sha256(path)):
        raise ShardError(f"{replaced} (its sha256 differs)")
    from masklab.tokenizers.text import TextTokenizer

    try:
        tokenizer = TextTokenizer.load(path)
    except ValueError as err:
        raise ShardError(f"{replaced} ({err})") from err
    if tokenizer.fingerprint != index.get("tokenizer_sha256"):
        raise ShardError(f"{replaced} (its vocabulary's sha256 differs)")


class PreparedCorpus:
    """A read-only view of a prepared folder: one token stream of ``len(self)`` ids across every shard.

    ``verify=True`` checks each shard's size and sha256 against the index when opened (reads every byte once);
    a mismatch is a :class:`ShardError` naming the shard. ``tokenizer.json`` is always checked
    (:func:`check_tokenizer`). Shards are memory-mapped on first use, so the
    resident memory is what the OS pages in, not the corpus size. Picklable for DataLoader workers (the maps
    are reopened in the worker, never copied).
    """

    def __init__(self, root: str | Path, *, verify: bool = True) -> None:
        self.root = Path(root)
        index = read_index(self.root)
        self.index = index
        self.shards = [ShardInfo(**s) for s in index["shards"]]
        self.dtype = np.dtype(index["token_dtype"])
        self.sep_id = int(index["sep_id"])
        self.tokenizer_sha256 = str(index["tokenizer_sha256"])
        check_tokenizer(self.root, index)
        for shard in self.shards:
            self._check(shard, verify)
        starts = np.cumsum([0] + [s.tokens for s in self.shards])
        self._token_starts = starts.tolist()  # shard k covers [starts[k], starts[k + 1])
        self._word_offsets = np.cumsum([0] + [s.words for s in self.shards]).tolist()
        # The stream ends without the last document's separator (as pack_sequences / token_stream build it).
        self.length = max(int(starts[-1]) - 1, 0)
        self._maps: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _check(self, shard: ShardInfo, verify: bool) -> None:
        path = self.root / shard.name
        if not path.is_file():
            raise ShardError(f"shard {path} is missing (listed in {self.root / INDEX_NAME})")
        size = path.stat().st_size
        expected = shard.tokens * (self.dtype.itemsize + WORD_DTYPE.itemsize) + shard.docs * DOC_DTYPE.itemsize
        if size != shard.bytes or size != expected:
            raise ShardError(f"shard {path} is truncated or wrong: {size} bytes, the index says {shard.bytes}")
        if verify and file_sha256(path) != shard.sha256:
            raise ShardError(f"shard {path} is corrupted: its sha256 does not match {self.root / INDEX_NAME}")

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}  # memmaps would pickle as full in-memory copies
        return state

    def arrays(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, word ids, document starts) of shard ``k`` as read-only memory maps."""
        if k not in self._maps:
            shard, path = self.shards[k], self.root / self.shards[k].name
            n = shard.tokens
            ids = np.memmap(path, dtype=self.dtype, mode="r", offset=0, shape=(n,))
            words = np.memmap(path, dtype=WORD_DTYPE, mode="r", offset=n * self.dtype.itemsize, shape=(n,))
            offset = n * (self.dtype.itemsize + WORD_DTYPE.itemsize)
            docs = np.memmap(path, dtype=DOC_DTYPE, mode="r", offset=offset, shape=(shard.docs,))
            self._maps[k] = (ids, words, docs)
        return self._maps[k]

    @overload
    def read(self, start: int, stop: int, *, words: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...
    @overload
    def read(self, start: int, stop: int, *, words: bool = False) -> tuple[np.ndarray, np.ndarray | None]: ...
    def read(self, start: int, stop: int, *, words: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Stream positions ``[start, stop)`` -> (ids int64, word ids int64 or None); may span shards."""
        if not 0 <= start <= stop <= self.length:
            raise IndexError(f"stream slice [{start}, {stop}) is outside [0, {self.length})")
        id_parts, word_parts = [], []
        k = bisect.bisect_right(self._token_starts, start) - 1
        pos = start
        while pos < stop:
            base = self._token_starts[k]
            end = min(stop, self._token_starts[k + 1])
            ids, wids, _ = self.arrays(k)
            id_parts.append(np.asarray(ids[pos - base : end - base], dtype=np.int64))
            if words:
                w = np.asarray(wids[pos - base : end - base], dtype=np.int64)
                word_parts.append(np.where(w >= 0, w + self._word_offsets[k], -1))
            pos, k = end, k + 1
        out_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
        if not words:
            return out_ids, None
        return out_ids, np.concatenate(word_parts) if word_parts else np.zeros(0, dtype=np.int64)

    def document_starts(self) -> np.ndarray:
        """Stream position of every document's first token, int64 ``(n_docs,)`` (reads every shard's table)."""
        return np.concatenate([np.asarray(self.arrays(k)[2]) + self._token_starts[k] for k in range(len(self.shards))])
