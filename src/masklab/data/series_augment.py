"""Random per-series augmentation for training a series classifier: :class:`SeriesAugment`.

A series is a float32 array ``(T_i, C)`` (NaN = not observed; :mod:`masklab.data.series`). The transform acts
on one unpadded series before batches are padded, so padded steps are never created, read or moved by it: a
shifted series is shorter, and the collate step pads to the new lengths; NaN stays NaN. Draws come from the
training loop's ``torch.Generator``, so a run is reproducible from its seed.

Only what validation kept lives here (a random time shift, issue 20's fourth run); the crops, stretches and
amplitude jitter measured against it are in ``bench/series_augment_variants.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SeriesAugment:
    """Random time shift of one series.

    * ``shift``: drop a random number ``k ~ U{0, ..., shift}`` of leading steps (the series starts later, so
      patch boundaries fall at another phase); series of at most ``min_length`` steps are left whole, longer
      ones keep at least ``min_length`` steps; ``0`` = off.

    ``__call__(series (T, C), generator) -> (T - k, C)`` float32; the input array is never modified.
    """

    shift: int = 0
    min_length: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"SeriesAugment.shift must be an int >= 0 (steps), got {self.shift!r}")
        if isinstance(self.min_length, bool) or not isinstance(self.min_length, int) or self.min_length < 1:
            raise ValueError(f"SeriesAugment.min_length must be an int >= 1, got {self.min_length!r}")

    @property
    def enabled(self) -> bool:
        """False when the transform is off (the identity)."""
        return self.shift > 0

    def __call__(self, series: np.ndarray, generator: torch.Generator) -> np.ndarray:
        out = np.asarray(series, dtype=np.float32)
        if self.shift > 0 and len(out) > self.min_length:
            out = out[int(torch.randint(min(self.shift, len(out) - self.min_length) + 1, (1,), generator=generator)) :]
        return out
