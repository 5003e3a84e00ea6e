"""Where training numbers go: ``metrics.jsonl`` on disk and a tqdm bar or plain log lines on stderr.

Progress goes to stderr so that a command's stdout stays clean for its results (e.g. ``--json``).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from masklab.core.io import atomic_write_bytes


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` file; a torn last line (writer killed mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:  # a damaged log: named, never a bare codec error
        raise ValueError(f"{path}: not a metrics log (byte {err.start} is not UTF-8 text)") from None
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class MetricsLog:
    """Append-only ``metrics.jsonl`` that can be rewound to a checkpoint's step on resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def reset(self) -> None:
        """Start an empty log (a fresh run)."""
        atomic_write_bytes(self.path, b"")

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` > ``step`` (logged after the checkpoint we resume from), so the
        resumed run does not log those steps twice; also drops a torn last line."""
        kept = [r for r in read_metrics(self.path) if isinstance(r.get("step"), int) and r["step"] <= step]
        atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class MetricWindow:
    """Sums since the last metrics record, kept as float64 device tensors: no host sync per step, and
    exactly restorable from the checkpoint so a resumed run logs the same numbers."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples, self.t0 = 0, time.perf_counter()

    def add_step(self, values: dict[str, torch.Tensor | float], samples: int) -> None:
        """Account one optimizer step of ``samples`` examples and its scalar ``values``."""
        self.steps += 1
        self.samples += samples
        for name, value in values.items():
            self.add(name, value)

    def add(self, name: str, value: torch.Tensor | float) -> None:
        if name not in self.sums:
            self.sums[name] = torch.zeros((), dtype=torch.float64, device=self.device)
        if torch.is_tensor(value):
            if value.numel() != 1:
                raise ValueError(f"metric {name!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
            self.sums[name] += value.detach().reshape(()).to(torch.float64)
        else:
            self.sums[name] += float(value)

    def means(self, dist_info=None) -> dict[str, float]:
        """Per-step means since the last record; averaged over ranks when ``dist_info`` is distributed."""
        sums = self.sums
        if dist_info is not None and dist_info.enabled:
            from masklab.train.distributed import mean_across_ranks

            sums = mean_across_ranks(sums, dist_info)
        values = torch.stack(list(sums.values())).tolist() if sums else []  # one host sync
        return {k: v / self.steps for k, v in zip(sums, values, strict=True)}

    def reset(self) -> None:
        self.sums, self.steps, self.samples, self.t0 = {}, 0, 0, time.perf_counter()

    def state_json(self) -> str:
        values = torch.stack(list(self.sums.values())).tolist() if self.sums else []
        return json.dumps({"steps": self.steps, "sums": dict(zip(self.sums, values, strict=True))})

    def load_json(self, text: str) -> None:
        state = json.loads(text)
        self.steps = int(state["steps"])
        self.sums = {k: torch.tensor(v, dtype=torch.float64, device=self.device) for k, v in state["sums"].items()}


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1h02m05s'``; short durations stay short (``'42s'``)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Reporter:
    """A tqdm bar (loss, lr, samples/s; tqdm supplies the ETA) or, when ``bar`` is False, one plain log
    line per logged step."""

    def __init__(self, *, bar: bool, total: int, initial: int, quiet: bool = False) -> None:
        self.total = total
        self.quiet = quiet  # non-zero ranks of a distributed run print nothing
        self._bar = None
        if bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def log(self, record: dict[str, Any], eta_s: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{record['loss']:.4g}",
                lr=f"{record['lr']:.2e}",
                samples_s=f"{record['samples_per_s']:.0f}",
            )
            return
        if self.quiet:
            return
        print(
            f"step {record['step']}/{self.total}  loss {record['loss']:.4f}  lr {record['lr']:.3e}  "
            f"grad_norm {record['grad_norm']:.3f}  {record['samples_per_s']:.0f} samples/s  "
            f"elapsed {format_duration(record['elapsed_s'])}  eta {format_duration(eta_s)}",
            file=sys.stderr,
            flush=True,
        )

    def message(self, text: str) -> None:
        """A one-off line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        elif not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
