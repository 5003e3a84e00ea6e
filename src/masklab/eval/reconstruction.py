"""What an MAE makes of masked images: the masked input, its reconstruction, and the reconstruction with the
visible patches pasted back, with PSNR on the hidden pixels (``masklab reconstruct``, ``masklab serve``).

Shape legend: ``B`` images, ``C`` channels, ``H x W`` pixels, ``L`` patches; ``masked`` True = hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from masklab.eval.inpainting import psnr
from masklab.tokenizers.patches import pixel_mask_from_patches


@dataclass(frozen=True)
class ReconstructionViews:
    """What an MAE makes of masked images, each ``(B, C, H, W)`` in [0, 1] on the CPU: ``masked_input`` (hidden
    patches grey), ``reconstruction`` (the raw prediction of every patch), ``pasted`` (the prediction in the hidden
    patches, the original in the visible ones); ``psnr`` per image in dB on the hidden pixels (inf if none)."""

    masked_input: Tensor
    reconstruction: Tensor
    pasted: Tensor
    psnr: list[float]


def reconstruction_views(model, images: Tensor, masked: Tensor) -> ReconstructionViews:
    """Reconstruct ``images (B, C, H, W)`` in [0, 1] hiding ``masked bool (B, L)`` (True = hidden; every row
    the same count, as :meth:`masklab.models.mae.MAE.reconstruct` needs)."""
    cfg = model.config
    device = next(model.parameters()).device
    images, masked = images.cpu(), masked.cpu()
    with torch.inference_mode():
        recon = model.reconstruct(images.to(device), masked.to(device)).cpu()
    hidden = pixel_mask_from_patches(masked, cfg.patch_size, cfg.grid)[:, None]  # (B, 1, H, W)
    masked_input = torch.where(hidden, torch.full_like(images, 0.5), images)
    pasted = torch.where(hidden, recon, images)
    scores = [psnr(pasted[i].numpy(), images[i].numpy(), hidden[i].expand_as(images[i]).numpy())
              for i in range(len(images))]  # fmt: skip
    return ReconstructionViews(masked_input, recon, pasted, scores)
