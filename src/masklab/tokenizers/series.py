"""Series -> channel-independent patches (PatchTST, Nie et al. 2023), with reversible instance normalisation.

Shape legend: ``B`` batch, ``T`` time steps, ``C`` channels, ``L`` patches per channel, ``P`` steps per patch
(``patch_len``), ``S`` stride. Masks: ``padding`` True = padded (a step past the series' end, or a patch made
only of such steps); ``observed`` True = a real, observed value.

Patch ``l`` covers steps ``[l*S, l*S + P)``. A series of ``T`` steps has ``1 + ceil(max(T - P, 0) / S)``
patches: the last one may run past ``T`` and is completed with padded steps (unlike HF's ``PatchTSTPatchify``,
which drops the first ``(T - P) % S`` steps instead; the two agree whenever ``(T - P) % S == 0``). So a series
gives the same real patches whatever length it is padded to; the extra patches are padding.

Every step that is padded or not observed is *replaced* (``torch.where``), never multiplied in, so its value
never reaches the output and its gradient is exactly zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def num_patches(length: int, patch_len: int, stride: int) -> int:
    """Patches that cover ``length`` steps: ``1 + ceil(max(length - patch_len, 0) / stride)``."""
    if min(length, patch_len, stride) < 1:
        raise ValueError(f"length, patch_len and stride must be >= 1, got {length}, {patch_len}, {stride}")
    return 1 + math.ceil(max(length - patch_len, 0) / stride)


@dataclass(frozen=True)
class InstanceNorm:
    """``normed`` float (B, T, C) = (values - loc) / scale; ``loc``, ``scale`` float (B, 1, C)."""

    normed: Tensor
    loc: Tensor
    scale: Tensor

    def invert(self, x: Tensor) -> Tensor:
        """Back to the data's units: ``x (B, T', C) * scale + loc`` (any ``T'``)."""
        return x * self.scale + self.loc


def instance_norm(values: Tensor, weight: Tensor, *, min_scale: float = 1e-5, enabled: bool = True) -> InstanceNorm:
    """RevIN without the affine part (Kim et al. 2022), as HF ``PatchTSTStdScaler``: per series and channel,
    ``loc`` = mean and ``scale = sqrt(var + min_scale)`` over the steps where ``weight`` bool (B, T, C) is True
    (real and observed). A channel with no such step gets loc 0. ``enabled=False``: loc 0, scale 1."""
    if weight.dtype != torch.bool or weight.shape != values.shape:
        raise ValueError(
            f"weight must be a bool tensor {tuple(values.shape)}, got {weight.dtype} {tuple(weight.shape)}"
        )
    if not enabled:
        ones = values.new_ones(values.shape[0], 1, values.shape[2])
        return InstanceNorm(values, ones * 0.0, ones)
    used = torch.where(weight, values, 0.0)  # (B, T, C)
    count = weight.sum(dim=1, keepdim=True).clamp_min(1).to(values.dtype)  # (B, 1, C)
    loc = used.sum(dim=1, keepdim=True) / count  # (B, 1, C)
    centred = torch.where(weight, values - loc, 0.0)
    scale = torch.sqrt((centred**2).sum(dim=1, keepdim=True) / count + min_scale)  # (B, 1, C)
    return InstanceNorm((values - loc) / scale, loc, scale)


def patchify(x: Tensor, patch_len: int, stride: int) -> Tensor:
    """``x (B, T, C)`` -> ``(B, C, L, P)``; steps past ``T`` read as 0 (``x`` False for bool input)."""
    T = x.shape[1]
    L = num_patches(T, patch_len, stride)
    total = patch_len + stride * (L - 1)
    x = F.pad(x.transpose(1, 2), (0, total - T))  # (B, C, total)
    return x.unfold(-1, patch_len, stride)  # (B, C, L, P)


def patch_padding(padding: Tensor, patch_len: int, stride: int) -> Tensor:
    """``padding bool (B, T)`` (True = padded step, at the end of each row) -> ``bool (B, L)``: True for the
    patches past the :func:`num_patches` of the row's own length (so padding never adds a real patch, even
    when an overlapping patch would still touch the last real step)."""
    lengths = (~padding).sum(dim=1)  # (B,)
    own = 1 + torch.div((lengths - patch_len).clamp_min(0) + stride - 1, stride, rounding_mode="floor")  # (B,)
    L = num_patches(padding.shape[1], patch_len, stride)
    return torch.arange(L, device=padding.device)[None, :] >= own[:, None]


def unpatchify(patches: Tensor, length: int, stride: int, padding: Tensor | None = None) -> Tensor:
    """``patches (B, C, L, P)`` -> ``(B, length, C)``: each step the mean of the real patches covering it (one
    patch when ``S == P``); ``padding bool (B, L)`` True = a padded patch, left out. Uncovered steps are 0."""
    B, C, L, P = patches.shape
    total = P + stride * (L - 1)
    real = patches.new_ones(B, 1, L, 1) if padding is None else (~padding)[:, None, :, None].to(patches.dtype)
    patches = torch.where(real > 0, patches, 0.0)
    folded = F.fold(patches.reshape(B * C, L, P).transpose(1, 2), (1, total), (1, P), stride=(1, stride))
    weight = real.expand(B, C, L, P).reshape(B * C, L, P).transpose(1, 2)
    cover = F.fold(weight, (1, total), (1, P), stride=(1, stride))
    out = (folded / cover.clamp_min(1)).reshape(B, C, total)[..., :length]  # (B, C, length)
    if out.shape[-1] < length:
        out = F.pad(out, (0, length - out.shape[-1]))
    return out.transpose(1, 2)
