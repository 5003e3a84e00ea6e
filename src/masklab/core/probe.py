"""Per-machine speed probes: time a few alternatives of the same step, interleaved, and cache the verdict on disk.

A probe's verdict holds for one machine and one software stack, so the cache key always includes the CPU model,
the torch version and the thread count (:func:`machine_key`); callers add what they measured (the model's
shapes). The cache is one JSON file per probe kind under :func:`masklab.core.cache.cache_dir`
(``$MASKLAB_CACHE_DIR``, default ``~/.cache/masklab``).
"""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
