"""``TrainConfig``: everything that defines a training run besides the model and the data."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# TrainConfig field -> smallest valid value.
_MINIMUMS = {
    "steps": 1, "batch_size": 1, "grad_accum": 1, "log_every": 1, "ckpt_every": 1,
    "warmup_steps": 0, "lr": 0, "min_lr": 0, "weight_decay": 0, "seed": 0, "workers": 0,
}  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run besides the model and the data."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # examples per optimizer step (split into grad_accum micro-batches)
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    grad_accum: int = 1
    log_every: int = 10
    ckpt_every: int = 200  # also always checkpoint at the final step
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (cuda -> bf16 autocast, cpu -> fp32) | fp32 | bf16 | fp16 (+ GradScaler)
    compile: bool = False  # torch.compile the model's training_loss
    # Under torchrun: shard weights, gradients and AdamW state over the ranks with FSDP2 instead of replicating
    # them with DDP (see masklab.train.distributed); checkpoints stay full single-process files.
    fsdp: bool = False
    # Wall-clock budget: stop (log + checkpoint) once spent. The learning-rate schedule then follows
    # whichever runs out first, steps or time, so a budgeted run still warms up and decays fully.
    # Time-budgeted runs are not bit-reproducible (where they stop depends on the machine).
    max_seconds: float | None = None
    # DataLoader worker processes that build (decode, augment) batches ahead of the step; 0 = in this process.
    # Results do not depend on it (each micro-batch's randomness is seeded by its step and index).
    workers: int = 0
    # time.monotonic() by which fit must have returned, its final checkpoint written (a command's --minutes
    # deadline; None: none). It belongs to one process, so config.json and the resume check leave it out.
    deadline: float | None = None

    def __post_init__(self) -> None:
        # JSON turns the tuple into a list; normalise so a config read back from config.json compares equal.
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        problems = [
            f"{name} must be >= {low} and finite, got {getattr(self, name)!r}"
            for name, low in _MINIMUMS.items()
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= low)
        ]
        if self.batch_size % max(self.grad_accum, 1):
            problems.append(f"batch_size ({self.batch_size}) must be divisible by grad_accum ({self.grad_accum})")
        if self.seed >= 2**32:
            problems.append(f"seed must be < 2**32, got {self.seed}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.max_seconds is not None and not (self.max_seconds > 0 and math.isfinite(self.max_seconds)):
            problems.append(f"max_seconds must be > 0 or None, got {self.max_seconds!r}")
        if self.grad_clip is not None and not (self.grad_clip > 0 and math.isfinite(self.grad_clip)):
            problems.append(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            problems.append(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            problems.append(f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if self.fsdp and self.precision == "fp16":
            problems.append("fsdp does not support precision='fp16' (use bf16 or fp32)")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The recorded settings (``config.json["train"]``): every field but the process-local ``deadline``."""
        values = dataclasses.asdict(self)
        del values["deadline"]
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict` (e.g. ``config.json["train"]``); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)
