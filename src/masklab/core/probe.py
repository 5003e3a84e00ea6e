"""Per-machine speed probes: time a few alternatives of the same step, interleaved, and cache the verdict on disk.

A probe's verdict holds for one machine and one software stack, so the cache key always includes the CPU model,
the torch version and the thread count (:func:`machine_key`); callers add what they measured (the model's
shapes). The cache is one JSON file per probe kind under :func:`masklab.core.cache.cache_dir`
(``$MASKLAB_CACHE_DIR``, default ``~/.cache/masklab``). :func:`choose_by_timing` is a whole two-way probe: a
forced setting, else the cached verdict, else a measurement that keeps the default unless the challenger wins
by a margin.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from masklab.core.cache import cache_dir
from masklab.core.io import atomic_write_json


def cpu_model_name() -> str:
    """The CPU's model name as ``lscpu`` shows it (``/proc/cpuinfo``), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key() -> dict[str, Any]:
    """What a CPU timing depends on besides the work itself."""
    return {"cpu": cpu_model_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}


def cache_path(kind: str) -> Path:
    """The cache file of probe ``kind`` (under :func:`~masklab.core.cache.cache_dir`)."""
    return cache_dir() / f"{kind}.json"


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:20]


def read_cached(kind: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
    """The cached verdict for ``key`` (``None`` if absent or the cache file is unreadable)."""
    try:
        entries = json.loads(cache_path(kind).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = entries.get(_digest(key)) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) else None


def write_cached(kind: str, key: Mapping[str, Any], verdict: Mapping[str, Any]) -> None:
    """Store ``verdict`` for ``key`` (atomic rewrite of the probe's cache file; failures only lose the cache)."""
    path = cache_path(kind)
    try:
        entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        if not isinstance(entries, dict):
            entries = {}
        entries[_digest(key)] = {**verdict, "key": dict(key)}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, entries)
    except (OSError, ValueError):
        pass


def time_interleaved(arms: Mapping[str, Callable[[], None]], repeats: int = 3, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each arm, calls interleaved (A B A B ...) so drifting load hits all arms alike."""
    for _ in range(warmup):
        for run in arms.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, run in arms.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


Name = TypeVar("Name", bound=str)


def env_setting(env_var: str, names: Sequence[str]) -> str:
    """``$env_var`` lower-cased (default ``auto``): one of ``names`` (forces it) or ``auto``; else a ValueError."""
    value = os.environ.get(env_var, "auto").strip().lower()
    if value not in (*names, "auto"):
        allowed = ", ".join(repr(name) for name in names)
        raise ValueError(f"{env_var} must be {allowed} or 'auto', got {value!r}")
    return value


@dataclass(frozen=True)
class TimedChoice(Generic[Name]):
    """The arm :func:`choose_by_timing` picked (``name``) and why, in words (``reason``)."""

    name: Name
    reason: str


def choose_by_timing(
    kind: str,
    arms: Mapping[Name, Callable[[], None]],
    *,
    setting: str,
    env_var: str,
    key: Mapping[str, Any],
    field: str,
    labels: Mapping[str, str] | None = None,
    repeats: int = 3,
    margin: float = 0.05,
    use_cache: bool = True,
    timer: Callable[..., dict[str, float]] = time_interleaved,
) -> TimedChoice[Name]:
    """Pick one of two ``arms`` (``{default: run, challenger: run}``, in that order); nothing is applied here.

    ``setting`` (read from ``env_var``, see :func:`env_setting`) names an arm to force it, with nothing run;
    ``"auto"`` takes the verdict cached for :func:`machine_key` plus ``key`` in probe ``kind``'s cache, else
    times the arms with ``timer`` (:func:`time_interleaved`) and caches the verdict: the winner under
    ``field``, each arm's seconds under ``<name>_s``. The challenger wins only when faster by more than
    ``margin``, so noise never makes the default slower. ``labels`` spell arm names in the reason's times.
    """
    if setting != "auto":
        forced = next((name for name in arms if name == setting), None)
        if forced is None:
            raise ValueError(f"{env_var}={setting} names none of {sorted(arms)}")
        return TimedChoice(forced, f"{env_var}={setting} (forced)")
    default, challenger = arms
    full_key = {**machine_key(), **key}
    cached = read_cached(kind, full_key) if use_cache else None
    source = "cached probe"
    if cached is None:
        times = timer(arms, repeats=repeats)
        winner = challenger if times[challenger] < (1 - margin) * times[default] else default
        cached = {field: winner, **{f"{name}_s": times[name] for name in arms}}
        if use_cache:
            write_cached(kind, full_key, cached)
        source = "measured now"
    name = challenger if cached.get(field) == challenger else default
    seconds = {arm: float(cached[f"{arm}_s"]) for arm in (default, challenger)}
    ms = {arm: f"{(labels or {}).get(arm, arm)} {1e3 * seconds[arm]:.1f} ms" for arm in seconds}
    ratio = seconds[default] / max(seconds[challenger], 1e-12)
    return TimedChoice(
        name,
        f"auto: {source} on {cpu_model_name()}: {ms[challenger]} vs {ms[default]} per step "
        f"({ratio:.2f}x; {challenger} needs > {margin:.0%} gain)",
    )
