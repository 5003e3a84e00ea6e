"""Text ``--data`` for a training run: a prepared folder is used as it is; a .txt/.jsonl file or folder is
prepared once into the run's cache (``<run>/prepared``), so every text run trains from memory-mapped shards.
Under torchrun only rank 0 prepares; the other ranks wait for its finished index (the run folder is rank 0's, so
ranks on other hosts need it on a shared filesystem, or a prepared ``--data``)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

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
    print(f"masklab: preparing {data} into {Path(run_dir) / CACHE_NAME} (tokenised once, reused on --resume)")
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
    )
    check_tokenizer(folder, read_index(folder))  # a finished cache is reused as it is: its tokenizer too
    return folder
