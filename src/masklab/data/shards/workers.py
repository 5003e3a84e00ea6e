"""What runs in a ``masklab prepare`` pool worker: the tokenizer it is given once, and the encoding and atomic
writing of one shard (:mod:`masklab.data.shards.prepare` hands shards out and collects them in order).

A worker exits when its parent dies: ``kill -9`` of a prepare left its workers alive for good, blocked on the
task queue (each holds the queue's write end too, so it never sees the queue close).
Top-level imports are numpy and the standard library: spawned workers start fast.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from masklab.data.shards.format import ShardInfo, encode_shard, file_sha256, shard_name

_WORKER: dict[str, Any] = {}


# linux/prctl.h: the signal the kernel sends this process when the thread that made it exits.
PR_SET_PDEATHSIG = 1
PARENT_CHECK_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """End this process when ``parent`` (the process that made it) dies. On Linux the kernel sends it SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere, or where that call fails, a daemon thread compares
    ``os.getppid()`` with ``parent`` every second. A parent that died before this call ends it at once. Killing
    is safe: a worker writes each shard atomically, and the next prepare removes a half-written temporary file."""
    if not _kernel_kills_orphan():
        threading.Thread(target=_watch_parent, args=(parent,), name="masklab-watch-parent", daemon=True).start()
    if os.getppid() != parent:  # it died before the kernel was told: this process was handed to another parent
        os._exit(1)


def _kernel_kills_orphan() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # no prctl in this C library
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)


def init_worker(tokenizer_json: str, parent: int | None = None) -> None:
    """Set up a pool worker: exit with ``parent`` (the preparing process; None: this process's parent now, see
    :func:`die_with_parent`), ignore Ctrl-C, run single-threaded, load the tokenizer from its JSON."""
    die_with_parent(os.getppid() if parent is None else parent)
    # Ctrl-C (SIGINT to the whole process group) is the parent's to handle: it stops submitting, keeps the
    # finished shards and exits 130. A worker that took it printed a traceback of its own ("Process ForkProcess-4").
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker: N workers use N cores, and the output never depends on thread scheduling.
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    from masklab.tokenizers.text import TextTokenizer

    _WORKER["tokenizer"] = TextTokenizer(Tokenizer.from_str(tokenizer_json))


def encode_documents(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents -> (ids, word ids, document starts) of one shard: each document's ids then ``[SEP]``; word ids
    count up from 0 across the documents (-1 for the separator and special tokens). Documents that encode to
    no token are dropped (as :func:`masklab.data.text.pack_sequences` drops them)."""
    sep = tokenizer.sep_id
    ids_parts: list[np.ndarray] = []
    word_parts: list[np.ndarray] = []
    starts: list[int] = []
    offset, position = 0, 0
    # Sub-batches: the tokenizer's per-token Encoding objects take ~70x the text's size while they live.
    encoded = (doc for i in range(0, len(texts), 512) for doc in tokenizer.encode_batch(texts[i : i + 512],
               add_special_tokens=False))  # fmt: skip
    for doc in encoded:
        if not doc.ids:
            continue
        words = np.asarray(doc.word_ids, dtype=np.int64)
        starts.append(position)
        ids_parts.append(np.asarray([*doc.ids, sep], dtype=np.int64))
        word_parts.append(np.append(np.where(words >= 0, words + offset, -1), -1))
        offset += int(words.max(initial=-1)) + 1
        position += len(doc.ids) + 1
    if not ids_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(ids_parts), np.concatenate(word_parts), np.asarray(starts, dtype=np.int64)


def write_shard(out: Path, k: int, texts: list[str], dtype_str: str) -> dict[str, Any]:
    from masklab.core.io import atomic_write_bytes, atomic_write_json

    ids, words, starts = encode_documents(_WORKER["tokenizer"], texts)
    data = encode_shard(ids, words, starts, np.dtype(dtype_str))
    path = atomic_write_bytes(out / shard_name(k), data)
    words_used = int(words.max(initial=-1)) + 1
    info = ShardInfo(shard_name(k), len(ids), len(starts), words_used, len(data), file_sha256(path)).to_dict()
    atomic_write_json(out / shard_name(k).replace(".bin", ".json"), info)  # the shard's "done" marker
    return info
