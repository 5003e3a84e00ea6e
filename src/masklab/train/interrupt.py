"""Ctrl-C during training loses nothing: the first press stops the loop after the step it is in, and the loop
checkpoints that step before it reports the interruption; a second press stops at once (as Python would).

Only where it is safe to take over SIGINT: the main thread of a single-process run whose handler is still
Python's own (torchrun ranks, other threads and programs with their own handler keep their handling). A step
is never cut in half, so the checkpoint always holds a consistent model, optimizer and sampler state.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType


def no_resume(out: Path) -> str:
    """What a command without ``--resume`` (``finetune``, ``segment train``) says after a stop: the same advice
    as when it is run again into ``out`` (:func:`masklab.recipes.finetune_outputs.restart_advice`)."""
    return f" (this command does not resume: delete {out} and run it again to start over, or give it another --out)"


class GracefulStop:
    """Context manager: while active, ``requested`` turns True on the first Ctrl-C (``say`` tells the user);
    the second raises ``KeyboardInterrupt``. ``enabled=False`` (e.g. under torchrun) leaves SIGINT alone."""

    def __init__(self, say: Callable[[str], None], *, enabled: bool = True) -> None:
        self.say = say
        self.requested = False
        self.active = (
            enabled
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        )
        self._previous: object = None

    def install(self) -> None:
        """Take over SIGINT (when :attr:`active`); :meth:`restore` gives it back."""
        if self.active:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def restore(self) -> None:
        if self.active and self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def __enter__(self) -> GracefulStop:
        self.install()
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.say("masklab: Ctrl-C: stopping after this step to save a checkpoint (press it again to stop at once)")

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.restore()


def held_step(ckpt_path: Path) -> int | None:
    """The step ``ckpt_path`` holds, read from its header now (None: no checkpoint, or unreadable)."""
    try:
        with open(ckpt_path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if length > os.fstat(f.fileno()).st_size:  # garbage (or a pickle): no safetensors header
                return None
            header = json.loads(f.read(length))
        return int(header["__metadata__"]["step"])
    except (OSError, ValueError, KeyError, TypeError, OverflowError):
        return None


def saved_note(ckpt_path: Path) -> str:
    """What the run directory holds, for a message about a stop (read from the checkpoint, not assumed)."""
    held = held_step(ckpt_path)
    return "no checkpoint was written yet" if held is None else f"{ckpt_path} holds step {held}"
