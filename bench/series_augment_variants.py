"""Fine-tuning augmentations measured on validation and NOT kept in the library (issue 20's fourth run,
docs/benchmarks.md): :class:`AugmentVariant` adds a random window (``crop``), a time stretch (``stretch``)
and amplitude jitter (``scale``) to :class:`masklab.data.series_augment.SeriesAugment`'s shift, applied in that
order (shift, crop, stretch, scale), exactly as they were measured. Used by ``bench/series_validation.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from masklab.data.series_augment import SeriesAugment


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


@dataclass(frozen=True)
class AugmentVariant(SeriesAugment):
    """``crop``: keep a random window of ``round(u * T)`` steps, ``u ~ U[crop, 1]`` (1.0 = off); ``stretch``:
    resample to ``round(T * exp(v))`` steps by linear interpolation, ``v ~ U[-log(1 + stretch), log(1 + stretch)]``
    (0 = off; NaN next to a step makes it NaN); ``scale``: multiply by ``exp(w)``, ``w ~ N(0, scale^2)`` (0 = off).
    Series ``(T, C)`` -> ``(T', C)`` float32, at least ``min_length`` steps."""

    crop: float = 1.0
    stretch: float = 0.0
    scale: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.crop <= 1.0:
            raise ValueError(f"crop must be in (0, 1] (least share of a series kept), got {self.crop}")
        if not 0.0 <= self.stretch < 1.0:
            raise ValueError(f"stretch must be in [0, 1), got {self.stretch}")
        if not (math.isfinite(self.scale) and self.scale >= 0.0):
            raise ValueError(f"scale must be a finite number >= 0, got {self.scale}")

    @property
    def enabled(self) -> bool:
        return super().enabled or self.crop < 1.0 or self.stretch > 0.0 or self.scale > 0.0

    def __call__(self, series: np.ndarray, generator: torch.Generator) -> np.ndarray:
        out = super().__call__(series, generator)
        n = len(out)
        if self.crop < 1.0 and n > self.min_length:
            keep = min(n, max(self.min_length, round(_uniform(generator, self.crop, 1.0) * n)))
            start = int(torch.randint(n - keep + 1, (1,), generator=generator))
            out = out[start : start + keep]
        if self.stretch > 0.0 and len(out) > 1:
            bound = math.log1p(self.stretch)
            target = max(self.min_length, round(len(out) * math.exp(_uniform(generator, -bound, bound))))
            old, new = np.linspace(0.0, 1.0, len(out)), np.linspace(0.0, 1.0, target)
            out = np.stack([np.interp(new, old, out[:, c]) for c in range(out.shape[1])], axis=1).astype(np.float32)
        if self.scale > 0.0:
            out = out * np.float32(math.exp(self.scale * float(torch.randn((), generator=generator))))
        return out
