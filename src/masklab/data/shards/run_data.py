"""Text ``--data`` for a training run: a prepared folder is used as it is; a .txt/.jsonl file or folder is
prepared once into the run's cache (``<run>/prepared``), so every text run trains from memory-mapped shards.
Under torchrun only rank 0 prepares; the other ranks wait for its finished index (the run folder is rank 0's, so
ranks on other hosts need it on a shared filesystem, or a prepared ``--data``)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklab.data.shards.format import check_tokenizer, is_prepared, read_index

if TYPE_CHECKING:
    from masklab.tokenizers.text import TokenizerKind

CACHE_NAME = "prepared"
POLL_SECONDS = 0.2


def _is_other_rank() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0"


def _wait_for_rank0(folder: Path) -> Path:
    """Wait until rank 0 has finished ``folder`` (its ``index.json`` is written last, atomically). No timeout:
    if rank 0 fails, torchrun stops this rank too."""
    while not is_prepared(folder):
        time.sleep(POLL_SECONDS)
    return folder


def prepared_for_run(
    data: str,
    run_dir: str | Path,
    *,
    tokenizer: str | Path | None = None,
    tokenizer_kind: TokenizerKind = "wordpiece",
    vocab_size: int = 8000,
    lowercase: bool = True,
    doc_per: str = "auto",
    text_field: str = "text",
    workers: int | None = None,
) -> Path:
    """The prepared folder to train from: ``data`` itself when it holds an ``index.json``, else
    ``run_dir/prepared`` (prepared now, or reused on ``--resume``). ``tokenizer`` (a tokenizer.json /
    vocab.txt / folder) fixes the vocabulary; None trains one on a bounded sample of ``data``. Under torchrun
    (``WORLD_SIZE`` > 1) ranks other than 0 neither read nor write the folder until rank 0 has finished it:
    two ranks preparing one folder at once would each find the other's half-written files. A folder whose
    ``tokenizer.json`` is not the one its ids come from is a :class:`~.format.ShardError` naming it."""
    from masklab.data.shards.prepare import prepare_corpus

    if is_prepared(data):
        check_tokenizer(Path(data), read_index(Path(data)))
        if tokenizer is not None:
            from masklab.tokenizers.text import TextTokenizer

            if (
                TextTokenizer.load(tokenizer).fingerprint
                != TextTokenizer.load(Path(data) / "tokenizer.json").fingerprint
            ):
                raise ValueError(f"--data {data} was prepared with another tokenizer than {tokenizer}")
        return Path(data)
    if _is_other_rank():
        return _wait_for_rank0(Path(run_dir) / CACHE_NAME)
    cache = Path(run_dir) / CACHE_NAME
    reused = is_prepared(cache)
    if not reused:
        print(f"masklab: preparing {data} into {cache} (tokenised once, reused on --resume)")
    # A run has trained on what the cache holds: deleting it and preparing the changed text again would not let
    # the run continue (its corpus identity differs, see check_resume_corpus), so that is not suggested.
    remedy = "or start a new run (another --out) to train on the changed data: this run trained on the old text"
    folder = prepare_corpus(
        data,
        Path(run_dir) / CACHE_NAME,
        tokenizer=tokenizer,
        tokenizer_kind=tokenizer_kind,
        vocab_size=vocab_size,
        lowercase=lowercase,
        doc_per=doc_per,
        text_field=text_field,
        workers=workers,
        remedy=remedy,
    )
    check_tokenizer(folder, read_index(folder))  # a finished cache is reused as it is: its tokenizer too
    if reused:
        print(f"masklab: reusing {cache} (prepared from {data})")
    return folder


def corpus_identity(folder: str | Path) -> dict[str, Any]:
    """What a run records of the prepared corpus it trains on (in ``text.json`` / ``lm.json``): one sha256 over
    the index's per-shard sha256 list (shards are checked against those when opened), the tokenizer's
    vocabulary sha256 and the stream's token count."""
    index = read_index(Path(folder))
    shards = "\n".join(str(s["sha256"]) for s in index["shards"])
    return {"shards_sha256": hashlib.sha256(shards.encode()).hexdigest(),
            "tokenizer_sha256": index.get("tokenizer_sha256"), "tokens": index.get("tokens")}  # fmt: skip


IDENTITY_KEYS = ("shards_sha256", "tokenizer_sha256", "tokens")
_WHAT = {"shards_sha256": "its shards' contents", "tokenizer_sha256": "its tokenizer", "tokens": "its token count"}


def check_resume_corpus(recorded: Mapping[str, Any] | None, current: Mapping[str, Any], folder: str | Path,
                        sidecar: str | Path) -> None:  # fmt: skip
    """Refuse to resume on a prepared corpus that is not the one the run trained on (``recorded``, read from
    the run's ``sidecar``; an older run that recorded none resumes unchecked). The message names what differs."""
    if not recorded:
        return
    changed = [k for k in IDENTITY_KEYS if k in recorded and recorded[k] != current.get(k)]
    if changed:
        what = ", ".join(_WHAT[k] for k in changed)
        tokens = f" ({recorded['tokens']:,} tokens then, {current.get('tokens'):,} now)" if "tokens" in changed else ""
        raise ValueError(
            f"cannot resume: {folder} is not the prepared corpus this run trained on ({what} differ from what "
            f"{sidecar} records{tokens}); the checkpoint would continue on other rows, so resume is refused: "
            "restore the data it was prepared from, or start a new run (another --out) on this data"
        )
