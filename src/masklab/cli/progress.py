"""Rendering a recipe's ``progress(stage, done, total)`` callback (:mod:`masklab.recipes.progress`) on stderr:
a tqdm bar per counted stage when stderr is a terminal (like ``fit`` and ``prepare``), otherwise one plain
line per stage plus a count at most every few seconds. ``-q/--quiet``: nothing (warnings and errors still
print). Standard library only until a bar is drawn."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

QUIET_HELP = "print no progress on stderr (results still go to stdout)"


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)


class StderrProgress:
    """A ``progress(stage, done, total)`` callback drawing on stderr; :meth:`close` ends the last bar."""

    def __init__(self, command: str, *, bar: bool | None = None, every_s: float = 5.0) -> None:
        self.command = command
        self.bar = sys.stderr.isatty() if bar is None else bar
        self.every_s = every_s
        self._stage: str | None = None
        self._tqdm: Any = None
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage != self._stage:
            self._start(stage, total)
        if self._tqdm is not None:
            self._tqdm.update(done - self._tqdm.n)
        elif total and done and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            print(f"masklab {self.command}: {stage}: {done}/{total} ({100 * done / total:.0f}%)", file=sys.stderr,
                  flush=True)  # fmt: skip

    def _start(self, stage: str, total: int | None) -> None:
        self.close()
        self._stage, self._last = stage, time.monotonic()
        if self.bar and total:
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=total, desc=stage, file=sys.stderr, dynamic_ncols=True)
        else:
            print(f"masklab {self.command}: {stage}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None


@contextlib.contextmanager
def reporting(args: argparse.Namespace, command: str) -> Iterator[Any]:
    """The callback for a command's parsed ``args``: :func:`masklab.recipes.progress.silent` under
    ``--quiet``, else a :class:`StderrProgress` that has already said what it loads; its bar ends on exit."""
    if getattr(args, "quiet", False):
        from masklab.recipes.progress import silent

        yield silent
        return
    progress = StderrProgress(command)
    run = getattr(args, "run", None)
    if run is None or (Path(run) / "config.json").is_file():  # not a run: the recipe's one-line error comes alone
        progress(f"loading {run or ''}".rstrip(), 0, None)
    try:
        yield progress
    finally:
        progress.close()
