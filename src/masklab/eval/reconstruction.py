"""What an MAE makes of masked images: the masked input, its reconstruction, and the reconstruction with the
visible patches pasted back, with PSNR on the hidden pixels (``masklab reconstruct``, ``masklab serve``).

An MAE trained with ``norm_pix_loss`` predicts each patch standardised by the patch's own mean and variance, which
a hidden patch's reconstruction cannot know. MAE's own visualisation takes them from the true image; that leaks the
hidden patches' brightness and contrast into the picture and the PSNR (a model predicting all zeros draws the
image at patch resolution). Here a hidden patch is de-normalised with the mean and standard deviation of the
*visible* patches of its image (the averages of their per-patch means and standard deviations): no statistic of a
hidden pixel is used, and :data:`NORM_PIX_NOTE` says so.

Shape legend: ``B`` images, ``C`` channels, ``H x W`` pixels, ``L`` patches, ``P`` values per patch; ``masked`` True
= hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from masklab.eval.inpainting import psnr
from masklab.tokenizers.patches import pixel_mask_from_patches

NORM_PIX_NOTE = "hidden patches: predicted normalised pixels shown with the visible patches' mean/std"


@dataclass(frozen=True)
class ReconstructionViews:
    """What an MAE makes of masked images, each ``(B, C, H, W)`` in [0, 1] on the CPU: ``masked_input`` (hidden
    patches grey), ``reconstruction`` (the raw prediction of every patch), ``pasted`` (the prediction in the hidden
    patches, the original in the visible ones); ``psnr`` per image in dB on the hidden pixels (inf if none);
    ``note``: how hidden patches were de-normalised (:data:`NORM_PIX_NOTE` for a ``norm_pix_loss`` run, else None)."""

    masked_input: Tensor
    reconstruction: Tensor
    pasted: Tensor
    psnr: list[float]
    note: str | None = None


def predict_pixels(model, images: Tensor, masked: Tensor) -> Tensor:
    """The reconstruction ``(B, C, H, W)`` in [0, 1] of ``images`` hiding ``masked``, with no hidden patch's own
    statistics used (:meth:`masklab.models.mae.MAE.reconstruct`); on ``images``' device."""
    return model.reconstruct(images, masked)


def reconstruction_views(model, images: Tensor, masked: Tensor) -> ReconstructionViews:
    """Reconstruct ``images (B, C, H, W)`` in [0, 1] hiding ``masked bool (B, L)`` (True = hidden; every row
    the same count, as :meth:`masklab.models.mae.MAE.reconstruct` needs)."""
    cfg = model.config
    device = next(model.parameters()).device
    images, masked = images.cpu(), masked.cpu()
    with torch.inference_mode():
        recon = predict_pixels(model, images.to(device), masked.to(device)).cpu()
    hidden = pixel_mask_from_patches(masked, cfg.patch_size, cfg.grid)[:, None]  # (B, 1, H, W)
    masked_input = torch.where(hidden, torch.full_like(images, 0.5), images)
    pasted = torch.where(hidden, recon, images)
    scores = [psnr(pasted[i].numpy(), images[i].numpy(), hidden[i].expand_as(images[i]).numpy())
              for i in range(len(images))]  # fmt: skip
    note = NORM_PIX_NOTE if cfg.norm_pix_loss else None
    return ReconstructionViews(masked_input, recon, pasted, scores, note)
