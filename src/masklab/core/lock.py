"""An exclusive lock on a folder: ``FOLDER/.lock``, held while one process writes the folder.

The lock is a small JSON file ``{"pid", "host", "since"}`` created with ``O_EXCL``, so of two processes that
create it at once exactly one succeeds; the other is refused with a :class:`FolderLockedError` naming the folder
and the holding process. A lock whose process is dead on this host (a killed writer) is stale and taken over;
two processes that find the same stale lock take it over one at a time (an ``flock`` on the folder), so exactly
one of them holds it. A lock on another host is never judged stale (its process cannot be looked up). The
holder removes the lock when it leaves the ``with`` block (also on an error or Ctrl-C), and only its own lock.

Used by training runs (:meth:`masklab.train.run.Run.lock`) and by ``masklab prepare``
(:mod:`masklab.data.shards.lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"
# A lock that cannot be read is a writer that is creating it (or died doing so): held until it is this old.
UNREADABLE_STALE_SECONDS = 60
# A lock is created empty and written at once: one found unreadable is read again for this long before a process
# that arrived at the same instant is told it is unreadable (it then names the holder instead).
CREATING_SECONDS = 1.0


class FolderLockedError(BlockingIOError):
    """Another live process holds the folder's lock (an ``OSError``: the CLI reports it, exit 2)."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


@contextlib.contextmanager
def folder_lock(
    folder: str | Path,
    *,
    doing: str = "written",
    error: type[FolderLockedError] = FolderLockedError,
    reentrant: bool = True,
) -> Iterator[Path]:
    """Hold ``folder/.lock`` (the folder and its parents are made when missing) for the ``with`` block.

    A second process is refused with ``error``: "FOLDER is being ``doing`` by process PID on HOST (lock PATH);
    ...". ``reentrant``: a process that already holds the lock may take it again (the outer holder releases
    it); otherwise it is refused like any other process. Yields the lock file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = lock_holder(path)
            waited = time.monotonic() + CREATING_SECONDS
            while holder is not None and holder.get("pid") == "?" and time.monotonic() < waited:
                time.sleep(0.02)  # created this instant: its writer fills it in next
                holder = lock_holder(path)
            ours = holder is not None and holder.get("pid") == me["pid"] and holder.get("host") == me["host"]
            if not ours and holder is not None and holder.get("pid") == "?":
                raise error(
                    f"{folder}: its lock {path} is unreadable (written {holder['age']:.0f} s ago: a writer is "
                    "starting, or died writing it); it is taken over once a minute old, or delete it"
                ) from None
            if holder is not None and not (ours and reentrant):
                raise error(
                    f"{folder} is being {doing} by process {holder.get('pid')} on {holder.get('host')} "
                    f"(lock {path}); wait for it to finish, or delete the lock if that process is gone"
                ) from None
            if not ours:
                remove_stale(path)  # its writer is dead
                continue
        else:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            break
        # Already ours (outside the except block, so an error in the body is not chained to this
        # FileExistsError): the outer holder releases it.
        yield path
        return
    else:
        raise error(f"could not take the lock {path}")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):  # only our own lock (never one taken over from us)
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == me["pid"]:
                path.unlink()


def remove_stale(path: Path) -> None:
    """Remove the stale lock ``path`` unless another process replaced it meanwhile: two processes that both
    found it stale take turns (an exclusive ``flock`` on its folder) and the second sees the first's new lock,
    so exactly one of them holds it."""
    import fcntl

    try:
        stale = path.read_bytes()
    except FileNotFoundError:
        return  # another process removed it (and may hold and have released its own): the caller retries
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == stale and lock_holder(path) is None:
                path.unlink()
    finally:
        os.close(fd)  # releases the flock


def lock_holder(path: Path) -> dict | None:
    """The live holder of a lock file, or None when the lock is stale (dead pid on this host, or unreadable for
    over a minute). An unreadable lock younger than that is ``{"pid": "?", "host": "?", "age": seconds}``."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        pid = int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        # Half-written or unreadable: treat as held unless it is old (a writer died mid-write).
        try:
            age = time.time() - path.stat().st_mtime
            return None if age > UNREADABLE_STALE_SECONDS else {"pid": "?", "host": "?", "age": age}
        except FileNotFoundError:
            return None
    if holder.get("host") == socket.gethostname() and not pid_alive(pid):
        return None
    return holder
