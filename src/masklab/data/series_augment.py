"""Random per-series augmentation for training a series classifier: :class:`SeriesAugment`.

A series is a float32 array ``(T_i, C)`` (NaN = not observed; :mod:`masklab.data.series`). Every transform
acts on one unpadded series before batches are padded, so padded steps are never created, read or moved by
it: a crop or a stretch changes ``T_i`` and the collate step pads to the new lengths; NaN stays NaN (a scaled
or resampled step next to a missing one is missing). Draws come from the training loop's ``torch.Generator``,
so a run is reproducible from its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


@dataclass(frozen=True)
class SeriesAugment:
    """Random time shift, window, time stretch and amplitude jitter of one series, applied in that order.

    * ``shift``: drop a random number ``k ~ U{0, ..., shift}`` of leading steps (the series starts later, so
      patch boundaries fall at another phase; at least ``min_length`` steps stay); ``0`` = off.
    * ``crop``: keep a random window of ``round(u * T_i)`` consecutive steps, ``u ~ U[crop, 1]``, at a random
      start (at least ``min_length`` steps, never more than ``T_i``); ``1.0`` = off.
    * ``stretch``: resample the series to ``round(T_i * exp(v))`` steps by linear interpolation,
      ``v ~ U[-log(1 + stretch), log(1 + stretch)]`` (at least ``min_length``); ``0.0`` = off.
    * ``scale``: multiply the whole series (all channels) by ``exp(w)``, ``w ~ N(0, scale^2)``; ``0.0`` = off.

    ``__call__(series (T, C), generator) -> (T', C)`` float32; the input array is never modified.
    """

    shift: int = 0
    crop: float = 1.0
    stretch: float = 0.0
    scale: float = 0.0
    min_length: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"SeriesAugment.shift must be an int >= 0 (steps), got {self.shift!r}")
        if not 0.0 < self.crop <= 1.0:
            raise ValueError(f"SeriesAugment.crop must be in (0, 1] (least share of a series kept), got {self.crop}")
        if not 0.0 <= self.stretch < 1.0:
            raise ValueError(f"SeriesAugment.stretch must be in [0, 1), got {self.stretch}")
        if not (math.isfinite(self.scale) and self.scale >= 0.0):
            raise ValueError(f"SeriesAugment.scale must be a finite number >= 0, got {self.scale}")
        if not isinstance(self.min_length, int) or self.min_length < 1:
            raise ValueError(f"SeriesAugment.min_length must be an int >= 1, got {self.min_length!r}")

    @property
    def enabled(self) -> bool:
        """False when every transform is off (the identity)."""
        return self.shift > 0 or self.crop < 1.0 or self.stretch > 0.0 or self.scale > 0.0

    def __call__(self, series: np.ndarray, generator: torch.Generator) -> np.ndarray:
        out = np.asarray(series, dtype=np.float32)
        if self.shift > 0 and len(out) > self.min_length:
            out = out[int(torch.randint(min(self.shift, len(out) - self.min_length) + 1, (1,), generator=generator)) :]
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
            factor = math.exp(self.scale * float(torch.randn((), generator=generator)))
            out = out * np.float32(factor)
        return out
