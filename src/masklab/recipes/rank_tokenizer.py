"""One tokenizer for every rank of a torchrun launch.

The ``tokenizers`` trainers are not deterministic across processes (WordPiece breaks ties between equal-count
pairs in a per-process random order), so ranks that each trained their own tokenizer could end up with different
vocabularies, and DDP would average gradients computed on different ids. Under torchrun (``WORLD_SIZE`` > 1)
rank 0 therefore trains the tokenizer and writes it to a hand-off file in the run directory; the other ranks wait
for that file and load it (as ranks wait for rank 0's prepared corpus in :mod:`masklab.data.shards.run_data`).
The run folder is rank 0's, so ranks on other hosts need it on a shared filesystem.

The hand-off file is named after what the tokenizer is trained from (``key``: data, kind, vocabulary size, ...).
One left by an earlier launch that died before cleaning up is reused by rank 0 too, never retrained: a rank
that arrived first may already have read it. A single process trains as before and writes no hand-off file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from masklab.tokenizers.text import TextTokenizer

HANDOFF_PREFIX = ".tokenizer-for-ranks-"
POLL_SECONDS = 0.2


def is_rank0() -> bool:
    """True in a single process and in torchrun's rank 0: the one process that writes a run's files."""
    return os.environ.get("RANK", "0") == "0"


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def handoff_path(run_dir: str | Path, key: Mapping[str, Any]) -> Path:
    """The hand-off file for a tokenizer trained from ``key`` (JSON-able settings) in ``run_dir``."""
    digest = hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return Path(run_dir) / f"{HANDOFF_PREFIX}{digest}.json"


def rank_shared_tokenizer(run_dir: str | Path, key: Mapping[str, Any], train: Callable[[], TextTokenizer]):
    """``train()`` in a single process. Under torchrun: rank 0 trains (or reuses a hand-off file left for the
    same ``key``) and writes the hand-off file, the other ranks wait for it (no timeout: if rank 0 fails,
    torchrun stops them too); every rank returns the tokenizer loaded from that file. Rank 0 removes the
    file with :func:`drop_handoff` once every rank has joined training."""
    if not _distributed():
        return train()
    path = handoff_path(run_dir, key)
    if not is_rank0():
        while not path.is_file():
            time.sleep(POLL_SECONDS)
        return TextTokenizer.load(path)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        train().save(path)  # atomically: a waiting rank never reads half a file
    return TextTokenizer.load(path)


def drop_handoff(run_dir: str | Path) -> None:
    """Rank 0 removes the hand-off files of ``run_dir``: call it once training has begun on every rank (fit
    joins the process group only when all ranks have arrived, so each has read its tokenizer by then)."""
    if _distributed() and is_rank0():
        for path in Path(run_dir).glob(f"{HANDOFF_PREFIX}*.json"):
            path.unlink(missing_ok=True)
