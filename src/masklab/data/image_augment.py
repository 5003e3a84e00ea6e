"""MAE's pretraining augmentation (RandomResizedCrop + flip, batched, drawn from a generator) and the image
batch ``fit`` receives. Layout: ``(B, C, H, W)`` float in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Augment:
    """MAE pretraining augmentation: RandomResizedCrop(scale, ratio) then a horizontal flip (p = 0.5)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {self.crop_ratio}")


def random_resized_crop(images: Tensor, generator: torch.Generator, augment: Augment) -> Tensor:
    """Batched RandomResizedCrop + flip: ``(B, C, H, W)`` -> ``(B, C, H, W)``, one crop per image.

    Each crop covers ``s ~ U(scale)`` of the area with aspect ``exp(U(log ratio))`` (sides clamped to the
    image), at a uniform position, resampled bilinearly back to full size with one ``grid_sample``.
    """
    B = images.shape[0]
    u = torch.rand(B, 5, generator=generator, dtype=torch.float64)  # (B, 5) scale, ratio, x, y, flip
    lo, hi = augment.crop_scale
    area = lo + (hi - lo) * u[:, 0]
    log_lo, log_hi = math.log(augment.crop_ratio[0]), math.log(augment.crop_ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the width
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)  # crop centre in [-1, 1] coordinates, crop stays inside
    cy = (2 * u[:, 3] - 1) * (1 - h)
    sign = torch.where((u[:, 4] < 0.5) & augment.flip, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass
class ImageBatch:
    """``images (B, C, H, W)`` float in [0, 1]; ``labels (B,)`` long, or None for unlabelled data."""

    images: Tensor
    labels: Tensor | None = None
