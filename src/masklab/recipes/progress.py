"""How a long recipe says what it is doing: an optional ``progress(stage, done, total)`` callback.

``stage`` names the current step in words (``"encoding 4,800 images (MAE encoder)"``); ``done`` of ``total``
units are finished (``total`` None: a step without a count). A new ``stage`` text starts a new step. Recipes
never print progress themselves; the CLI renders the callback on stderr (:mod:`masklab.cli.progress`), so
stdout keeps only results. ``progress=None`` says nothing; :func:`silent` also silences a fine-tune's
training log (``--quiet``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

Progress = Callable[[str, int, "int | None"], None]


def silent(stage: str, done: int, total: int | None) -> None:
    """The callback of ``--quiet``: reports nothing, and asks :func:`masklab.recipes.common.fit_run` for a
    silent training loop."""


def say(progress: Progress | None, stage: str) -> None:
    """Start an uncounted step ``stage`` (no-op without a callback)."""
    if progress is not None:
        progress(stage, 0, None)


def batches(count: int, batch_size: int, progress: Progress | None, stage: str) -> Iterator[slice]:
    """``slice``s of ``batch_size`` over ``range(count)``, reporting ``stage`` as ``done`` of ``count`` items."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1, got {batch_size}")
    if progress is not None:
        progress(stage, 0, count)
    for start in range(0, count, batch_size):
        yield slice(start, start + batch_size)
        if progress is not None:
            progress(stage, min(start + batch_size, count), count)
