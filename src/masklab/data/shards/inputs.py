"""What a prepared folder was made from, and whether a rerun may continue it or reuse it.

``prepare.json`` records the settings and every file ``--data`` reads with its size and modification time in
nanoseconds (``inputs``). A rerun compares both before any work:

* a folder with a finished shard (or an ``index.json``) whose settings or input differ is refused, naming the
  setting or the file that changed: its shards hold the old text, and continuing would mix old and new
  documents; reusing it would silently train on the old text. It is never deleted (it may be the only copy of
  a long prepare);
* a folder with no finished shard holds nothing of value (the settings, perhaps a tokenizer trained on the old
  text): a rerun with other settings or input starts it over, so a failed prepare (a broken line, a killed
  process) never blocks a corrected one.

Size + mtime_ns, not a content hash: checking a hash would read the whole corpus again on every rerun and every
``--resume``, while any write to a file changes its mtime_ns (make and rsync rely on the same). A file restored
with its old size and time (``touch -d``) is not noticed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from masklab.core.lock import LOCK_NAME
from masklab.data.shards.format import INDEX_NAME, TOKENIZER_NAME

SETTINGS_NAME = "prepare.json"
TEXT_SUFFIXES = (".txt", ".jsonl")


def text_files(root: Path) -> list[Path]:
    """The .txt/.jsonl files of a folder (recursively, sorted, hidden ones left out), or ``[root]``."""
    if root.is_dir():
        return sorted(
            p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix in TEXT_SUFFIXES
        )
    if root.suffix not in TEXT_SUFFIXES:
        raise ValueError(f"--data {root}: expected a .txt or .jsonl file or a folder of them")
    return [root]


def _files(data: str | Path) -> list[Path] | None:
    """Every file ``data`` reads (None for ``builtin:NAME``): the text files, or a datasets folder's files."""
    if str(data).startswith("builtin:"):
        return None
    root = Path(data).expanduser().resolve()
    if not root.exists():
        raise FileNotFoundError(f"--data {data}: no such file or directory")
    from masklab.data.hf_datasets import is_hf_dataset

    if is_hf_dataset(root):
        return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return text_files(root)


def input_bytes(data: str | Path) -> int | None:
    """The size of the text to read; None when it is not known before reading it (a built-in, or a datasets
    folder: its text column's UTF-8 size is not its files' size)."""
    if str(data).startswith("builtin:"):
        return None
    from masklab.data.hf_datasets import is_hf_dataset

    root = Path(data).expanduser().resolve()
    if is_hf_dataset(root):
        return None
    return sum(p.stat().st_size for p in text_files(root))


def input_files(data: str | Path) -> list[dict[str, Any]] | None:
    """``[{"path", "bytes", "mtime_ns"}]`` of every file ``data`` reads (None for ``builtin:NAME``)."""
    files = _files(data)
    if files is None:
        return None
    return [{"path": str(p), "bytes": (s := p.stat()).st_size, "mtime_ns": s.st_mtime_ns} for p in files]


def input_change(saved: list[dict[str, Any]] | None, now: list[dict[str, Any]] | None) -> str | None:
    """How the input changed from ``saved`` to ``now`` (the first file that differs), or None."""
    old = {f["path"]: f for f in saved or []}
    new = {f["path"]: f for f in now or []}
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before is None:
            return f"{path} is new"
        if after is None:
            return f"{path} was removed"
        if before["bytes"] != after["bytes"]:
            return f"{path} changed ({before['bytes']:,} -> {after['bytes']:,} bytes)"
        if before["mtime_ns"] != after["mtime_ns"]:
            return f"{path} changed (same size, modified since)"
    return None


def _finished_any(out: Path) -> bool:
    return (out / INDEX_NAME).is_file() or any(out.glob("shard-*.json"))


def _start_over(out: Path) -> None:
    """Remove what an unfinished prepare (no finished shard) wrote: its settings, tokenizer, unmarked shards."""
    for path in [out / SETTINGS_NAME, out / TOKENIZER_NAME, *out.glob("shard-*.bin"), *out.glob(".*.tmp")]:
        path.unlink(missing_ok=True)


def check_out_folder(out: Path, data: str | Path, settings: dict[str, Any], *, remedy: str | None = None) -> bool:
    """Check ``out`` before preparing ``data`` into it with ``settings`` (``inputs`` is added to them here).

    Returns True when ``out`` is finished from the same settings and input (nothing to do), False when there is
    work to do (a new folder, a killed prepare to continue, an unfinished one started over). A user error is a
    ``ValueError`` naming the folder and the setting or file that changed; ``remedy`` replaces its closing
    advice (delete the folder or use another --out), e.g. for a run's cache, where a run has trained on it."""
    saved_path = out / SETTINGS_NAME
    if not saved_path.is_file():
        if out.exists() and any(p.name != LOCK_NAME for p in out.iterdir()):  # the lock: this prepare's own
            raise ValueError(f"{out} exists and is not a prepared corpus; pick an empty or new --out")
        settings["inputs"] = input_files(data)
        return False
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    finished = _finished_any(out)
    try:
        settings["inputs"] = input_files(data)
    except FileNotFoundError:
        same = {k: v for k, v in saved.items() if k != "inputs"} == settings
        if not (same and (out / INDEX_NAME).is_file()):
            raise
        warnings.warn(f"--data {data} no longer exists; using the tokens {out} holds", stacklevel=2)
        return True
    if "inputs" not in saved and finished:  # written before inputs were recorded: nothing to compare with
        warnings.warn(
            f"{out / SETTINGS_NAME} does not record its input's sizes and times (an older masklab): whether "
            f"--data {data} changed since cannot be checked",
            stacklevel=2,
        )
        del settings["inputs"]
    problem = _difference(out, saved, settings)
    if problem is not None and not finished:
        warnings.warn(f"starting {out} over: it holds no finished shard, and {problem[0]}", stacklevel=2)
        _start_over(out)
        return False
    if problem is not None:
        raise ValueError(
            f"{problem[0]}; {problem[1]}, " + (remedy or f"or delete {out} or use another --out to prepare again")
        )
    return (out / INDEX_NAME).is_file()


def _difference(out: Path, saved: dict[str, Any], settings: dict[str, Any]) -> tuple[str, str] | None:
    """(what differs between the folder's ``saved`` settings and the given ones, the fix that keeps it)."""
    changed = {k: (saved.get(k), v) for k, v in settings.items() if k != "inputs" and saved.get(k) != v}
    if changed:
        return f"{out} was prepared with other settings (saved, given): {changed}", "give the same settings"
    if "inputs" in settings and (what := input_change(saved.get("inputs"), settings["inputs"])) is not None:
        return f"--data {what} since {out} was prepared from it", "its shards hold the old text: restore it"
    return None


def check_input_unchanged(out: Path, data: str | Path, settings: dict[str, Any]) -> None:
    """Refuse to finish ``out`` when ``data`` changed while it was read (an append by another process)."""
    if "inputs" not in settings:
        return
    what = input_change(settings["inputs"], input_files(data))
    if what is not None:
        raise ValueError(
            f"--data {data} changed while {out} was being prepared ({what}); delete {out} and prepare it again"
        )


def first_bad_byte(file: Path) -> str:
    """Where ``file``'s first invalid UTF-8 byte is (offset in the file, 1-based line): a text-mode read reports
    only its offset in the block it was decoding."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(file, "rb") as f:
        while block := f.read(1 << 20):
            pending = decoder.getstate()[0]  # an incomplete sequence from the previous block (never a newline)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as err:
                data = pending + block
                where = offset - len(pending) + err.start
                line += data[: err.start].count(b"\n")
                return f"{err.reason}: byte {data[err.start : err.start + 1]!r} at offset {where}, line {line}"
            offset, line = offset + len(block), line + block.count(b"\n")
    return "an incomplete UTF-8 sequence at its end"


def ignored_files(data: str | Path) -> list[Path]:
    """The files of a ``--data`` folder that are not read for their suffix (not .txt / .jsonl; hidden ones aside)."""
    root = Path(data).expanduser()
    if str(data).startswith("builtin:") or not root.is_dir():
        return []
    return sorted(
        p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and p.suffix not in TEXT_SUFFIXES
    )
