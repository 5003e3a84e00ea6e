"""Image patch tokenizer: images <-> sequences of flattened patches, and pixel masks <-> patch masks.

Shape legend: ``B`` batch, ``C`` channels, ``H``/``W`` image height/width, ``p`` patch side,
``gh = H / p``, ``gw = W / p``, ``L = gh * gw`` patches in row-major order (patch ``r * gw + c``),
``P = p * p * C`` values per patch.

Patch vectors are laid out ``(row-in-patch, column-in-patch, channel)``, the layout of MAE's
``models_mae.patchify`` and Hugging Face ``ViTMAEForPreTraining.patchify``, so predictions and losses line up
with those implementations element for element. Images need not be square; any channel count works.

Mask polarity: ``hidden: bool (B, H, W)`` True = pixel hidden / to be filled; ``masked: bool (B, L)`` True =
patch hidden (the masklab convention).
"""

from __future__ import annotations

import torch
from torch import Tensor


def patch_grid(height: int, width: int, patch: int, *, what: str = "image") -> tuple[int, int]:
    """``(gh, gw)`` for an ``height x width`` image cut into ``patch x patch`` squares.

    Raises ``ValueError`` naming ``what`` when the image is smaller than one patch or a side is not a
    multiple of the patch size (patches never straddle the border; resize or crop first).
    """
    if not isinstance(patch, int) or isinstance(patch, bool) or patch < 1:
        raise ValueError(f"patch size must be a positive int, got {patch!r}")
    if height < patch or width < patch:
        raise ValueError(f"{what} is {height}x{width} pixels, smaller than one {patch}x{patch} patch")
    if height % patch or width % patch:
        raise ValueError(
            f"{what} is {height}x{width} pixels; both sides must be multiples of the patch size {patch} "
            f"(e.g. {height // patch * patch}x{width // patch * patch})"
        )
    return height // patch, width // patch


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = f"{images.dtype} tensor of shape {tuple(images.shape)}" if isinstance(images, Tensor) else type(images)
        raise ValueError(f"images must be a float tensor (B, C, H, W), got {got}")


def patchify(images: Tensor, patch: int) -> Tensor:
    """``images (B, C, H, W)`` -> ``patches (B, L, P)``, ``P = p * p * C`` laid out (row, col, channel)."""
    _check_images(images)
    B, C, H, W = images.shape
    gh, gw = patch_grid(H, W, patch)
    x = images.reshape(B, C, gh, patch, gw, patch)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, p, p, C)
    return x.reshape(B, gh * gw, patch * patch * C)


def unpatchify(patches: Tensor, patch: int, grid: tuple[int, int], channels: int) -> Tensor:
    """Inverse of :func:`patchify`: ``patches (B, L, P)`` -> ``images (B, C, gh * p, gw * p)``."""
    gh, gw = grid
    if patches.ndim != 3 or patches.shape[1] != gh * gw or patches.shape[2] != patch * patch * channels:
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit a {gh}x{gw} grid of {patch}x{patch} patches "
            f"with {channels} channel(s) (expected (B, {gh * gw}, {patch * patch * channels}))"
        )
    B = patches.shape[0]
    x = patches.reshape(B, gh, gw, patch, patch, channels)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
    return x.reshape(B, channels, gh * patch, gw * patch)


def patch_mask_from_pixels(hidden: Tensor, patch: int, *, min_fraction: float = 0.0) -> Tensor:
    """Pixel mask ``hidden: bool (B, H, W)`` -> patch mask ``masked: bool (B, L)``.

    A patch is hidden when more than ``min_fraction`` of its pixels are hidden; the default 0 hides every
    patch that a hidden pixel touches, so no pixel the user wants filled is ever shown to the encoder.
    """
    if not isinstance(hidden, Tensor) or hidden.dtype != torch.bool or hidden.ndim != 3:
        raise ValueError(f"hidden must be a bool tensor (B, H, W), got {getattr(hidden, 'dtype', type(hidden))}")
    if not 0.0 <= min_fraction < 1.0:
        raise ValueError(f"min_fraction must be in [0, 1), got {min_fraction!r}")
    fraction = patchify(hidden[:, None].float(), patch).mean(dim=-1)  # (B, L)
    return fraction > min_fraction


def pixel_mask_from_patches(masked: Tensor, patch: int, grid: tuple[int, int]) -> Tensor:
    """Patch mask ``masked: bool (B, L)`` -> pixel mask ``hidden: bool (B, gh * p, gw * p)``."""
    if not isinstance(masked, Tensor) or masked.dtype != torch.bool or masked.ndim != 2:
        raise ValueError(f"masked must be a bool tensor (B, L), got {getattr(masked, 'dtype', type(masked))}")
    gh, gw = grid
    if masked.shape[1] != gh * gw:
        raise ValueError(f"masked has {masked.shape[1]} patches, the grid {gh}x{gw} has {gh * gw}")
    cells = masked.view(-1, gh, 1, gw, 1).expand(-1, gh, patch, gw, patch)  # (B, gh, p, gw, p)
    return cells.reshape(-1, gh * patch, gw * patch)
