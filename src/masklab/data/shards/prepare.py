"""``masklab prepare``: tokenise a text corpus once, in worker processes, into memory-mapped shards.

Documents are read as a stream (never the whole corpus in memory) and cut into shards of about
``shard_mb`` MB of input text, in input order. Each shard is encoded by a worker process and written
atomically (:mod:`masklab.core.io`), with a small ``shard-NNNNN.json`` beside it once it is complete; the
``index.json`` that makes the folder readable is written last. So:

* deterministic given the tokenizer: shard boundaries depend only on the input, never on the number of workers
  or timing, and each worker is single-threaded; the same input and the same ``tokenizer.json`` give
  byte-identical shards. A tokenizer *trained* here (no ``--tokenizer``) is not always the same from run to
  run: the ``tokenizers`` library's WordPiece / BPE trainer breaks ties between merges of equal count in a
  per-process order, so on a small corpus two runs may learn different vocabularies (and so write different
  ids). Pass ``--tokenizer FILE`` (e.g. the ``tokenizer.json`` of an earlier prepare) for exact reproducibility;
* resumable: a killed prepare, rerun with the same arguments, keeps every finished shard and encodes the rest;
  a full disk leaves the finished shards valid; an input that changed since (size or mtime_ns of a file) is
  refused, naming the file, never mixed with the old text's shards;
* bounded memory: at most ``2 * workers`` shards are in flight. One document is encoded in one call (splitting
  it could change its tokens), so peak memory also grows with the longest document, about 150x its size; a
  document over ``LONG_DOCUMENT`` bytes is warned about.

The tokenizer, when none is given, trains on a bounded sample: the first ``sample_mb`` MB of documents.
The pool workers run :mod:`.workers`, which imports only numpy and the standard library: spawned workers start fast.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from masklab.data.shards.format import (
    FORMAT,
    INDEX_NAME,
    TOKENIZER_NAME,
    file_sha256,
    shard_name,
    token_dtype,
)
from masklab.data.shards.inputs import (
    SETTINGS_NAME,
    check_input_unchanged,
    check_out_folder,
    first_bad_byte,
    ignored_files,
    input_bytes,
    text_files,
)
from masklab.data.shards.lock import prepare_lock
from masklab.data.shards.workers import init_worker, write_shard

if TYPE_CHECKING:
    from masklab.tokenizers.text import TokenizerKind


# ------------------------------------------------------------------------------------------- documents
def iter_documents(path: str | Path, *, doc_per: str = "auto", text_field: str = "text") -> Iterator[str]:
    """Stream the non-blank documents of ``path`` in the order :func:`masklab.data.text.read_corpus` reads
    them (same ``doc_per`` / ``text_field`` rules), holding one document (or one file, for ``doc_per=file``)
    at a time. ``builtin:NAME`` loads the (small) built-in corpus. A Hugging Face ``datasets`` folder gives
    one document per row of its text column (``text_field`` names it; see :mod:`masklab.data.hf_datasets`)."""
    spec = str(path)
    if spec.startswith("builtin:"):
        from masklab.data.text import load_text_corpus

        yield from load_text_corpus(spec).texts
        return
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"--data {path}: no such file or directory")
    from masklab.data.hf_datasets import is_hf_dataset

    if is_hf_dataset(root):  # a save_to_disk folder: one document per row of the text column
        from masklab.data.hf_datasets import iter_hf_texts

        yield from iter_hf_texts(root, text_field)
        return
    per = ("file" if root.is_dir() else "line") if doc_per == "auto" else doc_per
    for file in text_files(root):
        try:
            with open(file, encoding="utf-8-sig") as f:
                if file.suffix == ".jsonl":
                    for number, line in enumerate(f, start=1):
                        if line.strip():
                            try:
                                record = json.loads(line)
                            except json.JSONDecodeError as err:
                                raise ValueError(f"{file}:{number}: not valid JSON ({err.msg})") from err
                            text = record.get(text_field) if isinstance(record, dict) else None
                            if not isinstance(text, str):
                                raise ValueError(
                                    f"{file}:{number}: expected a JSON object with a string {text_field!r} field"
                                )
                            if text.strip():
                                yield text
                elif per == "line":
                    for line in f:
                        for doc in line.splitlines():
                            if doc.strip():
                                yield doc
                else:
                    text = f.read()
                    if text.strip():
                        yield text
        except UnicodeDecodeError as err:
            raise ValueError(f"{file} is not UTF-8 text ({first_bad_byte(file)}); convert it, "
                             "e.g. iconv -f latin1 -t utf-8") from err  # fmt: skip


# One document is encoded in one tokenizer call (splitting it could change the tokens at the cut), which takes
# about 150x its size while it runs: a document over this size is warned about, once.
LONG_DOCUMENT = 16_000_000


def _shards_of(docs: Iterator[str], shard_bytes: int) -> Iterator[tuple[list[str], int]]:
    """Group documents into shards of >= ``shard_bytes`` UTF-8 bytes (the last may be smaller)."""
    batch: list[str] = []
    size, warned = 0, False
    for doc in docs:
        batch.append(doc)
        doc_bytes = len(doc.encode("utf-8"))
        size += doc_bytes
        if doc_bytes > LONG_DOCUMENT and not warned:
            warned = True
            warnings.warn(f"a document of {doc_bytes} bytes: each document is encoded in one call, which needs "
                          f"about 150x its size in memory; split long documents (e.g. --doc-per line)",
                          stacklevel=2)  # fmt: skip
        if size >= shard_bytes:
            yield batch, size
            batch, size = [], 0
    if batch:
        yield batch, size


def _sample(docs: Iterator[str], sample_bytes: int) -> Iterator[str]:
    """The tokenizer's training sample: the first ``sample_bytes`` UTF-8 bytes of documents, the last one cut
    at a whitespace (or a character) boundary, so one long document cannot make the sample unbounded."""
    size = 0
    for doc in docs:
        data = doc.encode("utf-8")
        if size + len(data) >= sample_bytes:
            head = data[: sample_bytes - size].decode("utf-8", "ignore")
            if len(data) > sample_bytes - size and len(head.split(None, 1)) > 1:
                head = head.rsplit(None, 1)[0]  # no word cut in two
            if head.strip():
                yield head
            return
        size += len(data)
        yield doc


def _finished_shard(out: Path, k: int) -> dict[str, Any] | None:
    """The record of shard ``k`` if an earlier (killed) prepare completed it, else None."""
    meta, path = out / shard_name(k).replace(".bin", ".json"), out / shard_name(k)
    if not (meta.is_file() and path.is_file()):
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if path.stat().st_size == info.get("bytes") else None


# --------------------------------------------------------------------------------------------- prepare
def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def prepare_corpus(
    data: str | Path,
    out: str | Path,
    *,
    tokenizer: str | Path | None = None,
    tokenizer_kind: TokenizerKind = "wordpiece",
    vocab_size: int = 8000,
    lowercase: bool = True,
    doc_per: str = "auto",
    text_field: str = "text",
    workers: int | None = None,
    shard_mb: float = 64.0,
    sample_mb: float = 50.0,
    progress: bool | None = None,
    on_shard: Callable[[int], None] | None = None,
    remedy: str | None = None,
) -> Path:
    """Tokenise ``data`` (a .txt/.jsonl file or folder, or ``builtin:NAME``) into shards under ``out``.

    ``tokenizer``: a tokenizer.json / vocab.txt / folder to use; None trains ``tokenizer_kind`` with
    ``vocab_size`` on the first ``sample_mb`` MB. Rerunning on a finished folder returns at once; on a killed
    one it continues. Either needs the same settings and an unchanged input (each file's size and mtime_ns, in
    ``prepare.json``; see :mod:`.inputs`), else a ``ValueError`` names what changed. ``on_shard(k)`` is called
    in this process after shard ``k`` is on disk. ``remedy`` replaces the advice closing that ``ValueError``
    (delete ``out`` or use another ``--out``). Returns ``out``.

    The whole prepare holds ``out/.lock`` (:mod:`.lock`): while another live process prepares ``out``, this
    one is a :class:`~.lock.PrepareLockedError` (an ``OSError``) naming it, and nothing in ``out`` is touched;
    a lock left by a killed prepare is taken over.
    """
    from masklab.core.io import atomic_write_json
    from masklab.tokenizers.text import TextTokenizer

    out = Path(out)
    if shard_mb <= 0 or sample_mb <= 0:
        raise ValueError(f"--shard-mb and --sample-mb must be > 0, got {shard_mb}, {sample_mb}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    settings = {
        "format": FORMAT,
        "data": str(Path(data).expanduser().resolve()) if not str(data).startswith("builtin:") else str(data),
        "doc_per": doc_per,
        "text_field": text_field,
        "shard_bytes": int(shard_mb * 1e6),
        "tokenizer": str(tokenizer) if tokenizer else {"kind": tokenizer_kind, "vocab_size": vocab_size,
                                                       "lowercase": lowercase, "sample_bytes": int(sample_mb * 1e6)},
    }  # fmt: skip
    with prepare_lock(out):  # held until the index is written, or the prepare fails
        if check_out_folder(out, data, settings, remedy=remedy):  # adds "inputs": each file's size and mtime_ns
            return out
        if next(iter_documents(data, doc_per=doc_per, text_field=text_field), None) is None:
            from masklab.data.text import empty_corpus

            raise empty_corpus(data, ignored_files(data))
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):  # a killed writer's half file: never valid data
            stale.unlink(missing_ok=True)
        atomic_write_json(out / SETTINGS_NAME, settings)

        if (out / TOKENIZER_NAME).is_file():
            tok = TextTokenizer.load(out / TOKENIZER_NAME)
        elif tokenizer:
            tok = TextTokenizer.load(tokenizer)
        else:
            sample = _sample(iter_documents(data, doc_per=doc_per, text_field=text_field), int(sample_mb * 1e6))
            tok = TextTokenizer.train(sample, tokenizer_kind, vocab_size=vocab_size, lowercase=lowercase)
        tok.require("sep")
        tok.save(out / TOKENIZER_NAME)
        dtype = token_dtype(tok.vocab_size)

        bar = _progress_bar(progress, input_bytes(data))
        records: list[dict[str, Any]] = []
        # fork: workers start at once and need no importable __main__ (spawn re-runs a user's script); with
        # TOKENIZERS_PARALLELISM=false set before forking, the tokenizers library neither warns nor spawns threads.
        ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
        saved_env = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        try:
            _run_pool(ctx, workers, tok, out, data, doc_per, text_field, settings, dtype, bar, records, on_shard)
        finally:
            if saved_env is None:
                os.environ.pop("TOKENIZERS_PARALLELISM", None)
            else:
                os.environ["TOKENIZERS_PARALLELISM"] = saved_env
        bar.close()
        check_input_unchanged(out, data, settings)
        records = [r for r in records if r["tokens"] > 0]
        if not records:
            raise ValueError(f"--data {data}: the corpus is empty (every document encoded to zero tokens)")
        index = {
            "format": FORMAT,
            "token_dtype": dtype.str,
            "vocab_size": tok.vocab_size,
            "sep_id": tok.sep_id,
            "tokenizer": TOKENIZER_NAME,
            "tokenizer_sha256": tok.fingerprint,
            "tokenizer_file_sha256": file_sha256(out / TOKENIZER_NAME),
            "documents": sum(r["docs"] for r in records),
            "tokens": sum(r["tokens"] for r in records) - 1,
            "shards": records,
        }
        atomic_write_json(out / INDEX_NAME, index)
        return out


def _run_pool(ctx, workers, tok, out, data, doc_per, text_field, settings, dtype, bar, records, on_shard) -> None:
    """Encode every shard not already on disk, at most ``2 * workers`` in flight, collecting in shard order."""
    pending: deque[tuple[int, int, Future]] = deque()

    def collect_oldest() -> None:
        k, size, future = pending.popleft()
        try:
            records.append(future.result())
        except OSError as err:  # a full disk, a lost mount: every shard with its .json marker stays valid
            for _, _, later in pending:
                later.cancel()
            message = (
                f"cannot write {out / shard_name(k)}: {err.strerror or err}; the {len(records)} shards before it "
                "are complete and kept: free space and rerun the same command to continue"
            )
            stop = OSError(message)
            stop.errno = err.errno
            raise stop from err
        bar.update(size)
        if on_shard is not None:
            on_shard(k)

    initargs = (tok.to_json(), os.getpid())  # the workers exit with this process (kill -9 left them running)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=initargs) as pool:
        try:
            shards = _shards_of(iter_documents(data, doc_per=doc_per, text_field=text_field), settings["shard_bytes"])
            for k, (texts, size) in enumerate(shards):
                done = _finished_shard(out, k)
                if done is not None and not pending:
                    records.append(done)
                    bar.update(size)
                    continue
                if done is not None:  # keep the records in shard order
                    pending.append((k, size, _resolved(done)))
                else:
                    pending.append((k, size, pool.submit(write_shard, out, k, texts, dtype.str)))
                while len(pending) >= 2 * workers:
                    collect_oldest()
            while pending:
                collect_oldest()
        except KeyboardInterrupt:  # the shards being encoded finish (and are kept); queued ones are dropped
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _resolved(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(progress: bool | None, total: int | None):
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="prepare", file=sys.stderr, dynamic_ncols=True)
