"""The lock of a folder being prepared: ``OUT/.lock`` (:func:`masklab.core.lock.folder_lock`), held for a whole
``masklab prepare`` (and for the preparation of a training run's ``RUN/prepared``).

Two prepares into one folder at once, each with a tokenizer it trained, wrote shards of two vocabularies into it,
which then loaded without error. Now the second one is refused before it reads or writes anything in the folder,
with a :class:`PrepareLockedError` naming the folder and the holding process (exit 2 from the CLI). A lock left
by a killed prepare (its process dead on this host) is taken over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from masklab.core.lock import FolderLockedError, folder_lock


class PrepareLockedError(FolderLockedError):
    """Another live process is preparing this folder (an ``OSError``: the CLI reports it, exit 2)."""


@contextlib.contextmanager
def prepare_lock(out: Path) -> Iterator[Path]:
    """Hold ``out/.lock`` for the ``with`` block; not re-entrant (a second prepare of ``out`` in this process is
    refused too). The lock makes ``out`` (and its missing parents); when the block fails, the folders it made are
    removed again if they are still empty. The lock is removed at the end, also on an error or Ctrl-C."""
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        with folder_lock(out, doing="prepared", error=PrepareLockedError, reentrant=False):
            yield out
    except BaseException:
        for folder in made:  # deepest first; stops at the first one holding something
            try:
                folder.rmdir()
            except OSError:
                break
        raise
