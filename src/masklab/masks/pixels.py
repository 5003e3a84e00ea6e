"""Pixel masks <-> patch masks, as pure tensor functions (so a subject mask can drive MAE masking).

Shape legend: ``B`` batch, ``H``/``W`` image height/width, ``p`` patch side, ``gh = H / p``, ``gw = W / p``,
``L = gh * gw`` patches in row-major order (patch ``r * gw + c``, the order of
:func:`masklab.tokenizers.patches.patchify`).

Polarity: ``hidden: bool (B, H, W)`` True = pixel hidden (e.g. the subject to remove); ``masked: bool (B, L)``
True = patch hidden from the encoder / to be predicted (the masklab convention).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor


def _check_patch(patch: int) -> int:
    if not isinstance(patch, numbers.Integral) or isinstance(patch, bool) or patch < 1:
        raise ValueError(f"patch size must be a positive int, got {patch!r}")
    return int(patch)


def _grid(hidden: Tensor, patch: int) -> tuple[int, int]:
    patch = _check_patch(patch)
    H, W = hidden.shape[-2:]
    if min(H, W) < patch:
        raise ValueError(f"the pixel mask is {H}x{W}, smaller than one {patch}x{patch} patch")
    if H % patch or W % patch:
        raise ValueError(f"the pixel mask is {H}x{W}; both sides must be multiples of the patch size {patch}")
    return H // patch, W // patch


def patch_coverage(hidden: Tensor, patch: int) -> Tensor:
    """Fraction of hidden pixels in each patch: ``hidden: bool (B, H, W)`` -> ``float32 (B, L)`` in [0, 1]."""
    if not isinstance(hidden, Tensor) or hidden.dtype != torch.bool or hidden.ndim != 3:
        got = f"{hidden.dtype} tensor of shape {tuple(hidden.shape)}" if isinstance(hidden, Tensor) else type(hidden)
        raise ValueError(f"hidden must be a bool tensor (B, H, W) (True = hidden pixel), got {got}")
    gh, gw = _grid(hidden, patch)
    patch = int(patch)
    B = hidden.shape[0]
    cells = hidden.reshape(B, gh, patch, gw, patch).float()  # (B, gh, p, gw, p)
    return cells.mean(dim=(2, 4)).reshape(B, gh * gw)  # (B, L)


def masked_from_pixels(hidden: Tensor, patch: int, *, threshold: float = 0.0) -> Tensor:
    """Pixel mask ``hidden: bool (B, H, W)`` -> patch mask ``masked: bool (B, L)``.

    A patch counts as hidden when the fraction of its hidden pixels is strictly above ``threshold``. The
    default 0 hides every patch that a hidden pixel touches, so no pixel meant to be filled is shown to the
    encoder; 0.5 gives the majority vote.
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"coverage threshold must be in [0, 1) (1 would hide nothing), got {threshold!r}")
    return patch_coverage(hidden, patch) > threshold


def pixels_from_masked(masked: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """Patch mask ``masked: bool (B, L)`` -> pixel mask ``hidden: bool (B, gh * p, gw * p)`` (each patch's
    pixels take its value)."""
    if not isinstance(masked, Tensor) or masked.dtype != torch.bool or masked.ndim != 2:
        got = getattr(masked, "dtype", type(masked))
        raise ValueError(f"masked must be a bool tensor (B, L) (True = hidden patch), got {got}")
    patch = _check_patch(patch)
    if not (isinstance(grid, tuple | list) and len(grid) == 2) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in grid
    ):
        raise ValueError(f"grid must be (gh, gw), two positive ints, got {grid!r}")
    gh, gw = int(grid[0]), int(grid[1])
    if masked.shape[1] != gh * gw:
        raise ValueError(f"masked has {masked.shape[1]} patches; a {gh}x{gw} grid has {gh * gw}")
    cells = masked.reshape(-1, gh, 1, gw, 1).expand(-1, gh, patch, gw, patch)  # (B, gh, p, gw, p)
    return cells.reshape(-1, gh * patch, gw * patch)
