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
from masklab.masks.generators import MaskSample, ids_from_masked
from masklab.models.mae.model import NORM_PIX_EPS
from masklab.tokenizers.patches import patchify, pixel_mask_from_patches, unpatchify

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


def visible_stat_pixels(model, pred: Tensor, images: Tensor, masked: Tensor) -> Tensor:
    """A ``norm_pix_loss`` MAE's ``pred (B, L, P)`` -> pixels ``(B, C, H, W)`` in [0, 1]. A visible patch gets its
    own mean and standard deviation back; a hidden one the average mean and standard deviation of its image's
    visible patches (each image needs one visible patch). Nothing is read from a hidden patch's pixels."""
    cfg = model.config
    target = patchify(model.normalize(images), cfg.patch_size)  # (B, L, P)
    mean = target.mean(dim=-1, keepdim=True)  # (B, L, 1)
    std = (target.var(dim=-1, keepdim=True) + NORM_PIX_EPS) ** 0.5
    visible = (~masked)[..., None].to(target.dtype)  # (B, L, 1)
    count = visible.sum(dim=1, keepdim=True)
    if bool((count == 0).any()):
        raise ValueError("every patch of an image is hidden: no visible patch to take statistics from")
    hidden = masked[..., None]
    mean = torch.where(hidden, (mean * visible).sum(dim=1, keepdim=True) / count, mean)
    std = torch.where(hidden, (std * visible).sum(dim=1, keepdim=True) / count, std)
    out = unpatchify(pred * std + mean, cfg.patch_size, cfg.grid, cfg.channels)
    return model.denormalize(out).clamp(0.0, 1.0)


def predict_pixels(model, images: Tensor, masked: Tensor) -> Tensor:
    """The reconstruction ``(B, C, H, W)`` in [0, 1] of ``images`` hiding ``masked``, with no hidden patch's own
    statistics used (see the module docstring); on ``images``' device."""
    model.check_images(images)
    mask = MaskSample(masked, *ids_from_masked(masked))
    pred = model.forward_decoder(model.forward_encoder(model.normalize(images), mask), mask)  # (B, L, P)
    if model.config.norm_pix_loss:
        return visible_stat_pixels(model, pred, images, masked)
    return model.pixels_from_pred(pred, images)  # without norm_pix_loss it reads nothing from images


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
