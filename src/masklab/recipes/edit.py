"""Mask-guided image edits: cut out, blur or replace the background, or remove the subject (MAE fill).

Images are uint8 numpy arrays ``(H, W, C)`` (C = 1 or 3) at their own size; ``subject: bool (H, W)`` is True on
subject pixels (predicted by a segmentation head, :func:`subject_mask`, or read from a hand-made mask PNG).
Every edit changes only the pixels it is about: a background edit leaves subject pixels byte-identical, and
:func:`remove_subject` changes only the pixels under ``subject``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from masklab.masks.pixels import masked_from_pixels
from masklab.models.mae import MAE
from masklab.models.segment import Segmenter

EDITS = ("remove-background", "blur-background", "replace-background", "remove-subject")


def _check(image: np.ndarray, subject: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"image must be uint8 (H, W, C) with C = 1 or 3, got {image.dtype} {image.shape}")
    if subject.dtype != bool or subject.shape != image.shape[:2]:
        raise ValueError(f"the subject mask must be bool {image.shape[:2]} (the image's size), got "
                         f"{subject.dtype} {subject.shape}")  # fmt: skip
    if not subject.any():
        raise ValueError("the subject mask is empty: no subject pixel to edit around")


def read_image(path: str | Path, channels: int | None = 3) -> np.ndarray:
    """An image file as uint8 ``(H, W, channels)`` (``ValueError`` naming an unreadable file); a 16/32-bit
    gray file is rescaled to 8 bits as training reads it (:func:`masklab.data.image_files.to_8bit`).
    ``channels=None`` keeps the picture's own: 1 for a gray file, 3 for a colour one."""
    from masklab.data.image_files import image_pixels, is_gray, open_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    img = open_image(path)
    return image_pixels(img, (1 if is_gray(img) else 3) if channels is None else channels)


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(H, W, C)`` -> ``(H, W, channels)``: gray replicated to RGB, colour to its luma (as training
    converts pictures, PIL's ``convert("L")``); the same array when it already has ``channels``."""
    from PIL import Image

    if image.shape[2] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"), dtype=np.uint8)[..., None]


def read_subject(path: str | Path, image: np.ndarray) -> np.ndarray:
    """A hand-made binary mask PNG (white = subject) for ``image``: ``bool (H, W)``; errors name the file
    for another size, non-binary values or an empty mask."""
    from masklab.data.pixel_masks import read_mask

    subject = read_mask(path, kind="binary")
    if subject.shape != image.shape[:2]:
        raise ValueError(f"mask {path} is {subject.shape[0]}x{subject.shape[1]} but the image is "
                         f"{image.shape[0]}x{image.shape[1]}; a mask must have its image's size")  # fmt: skip
    return subject


def subject_mask(seg: Segmenter, image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Predicted subject pixels ``bool (H, W)`` (any non-background class) of a uint8 image ``(H, W, C)``."""
    from masklab.recipes.segment import predict_mask

    image = with_channels(image, seg.mae.config.channels)  # the mask only: the picture keeps its channels
    x = torch.from_numpy(np.array(image.transpose(2, 0, 1))).float() / 255.0  # (C, H, W)
    subject = predict_mask(seg, x, box).numpy() > 0
    if not subject.any():
        raise ValueError("the segmentation head found no subject in this image; pass --mask MASK.png")
    return subject


def remove_background(image: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """RGBA cut-out ``uint8 (H, W, 4)``: the subject's pixels, alpha 255 on the subject and 0 elsewhere."""
    _check(image, subject)
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    alpha = np.where(subject, 255, 0).astype(np.uint8)[..., None]
    return np.concatenate([rgb, alpha], axis=2)


def blur_background(image: np.ndarray, subject: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """Background pixels replaced by a Gaussian blur (standard deviation ``radius`` pixels) of the background
    alone; subject pixels kept. The blur is a normalised convolution over background pixels (outside the image
    counts as nothing), so no subject colour bleeds into the blurred background as a halo."""
    _check(image, subject)
    if not 0 < radius < float("inf"):
        raise ValueError(f"blur radius must be a number > 0, got {radius}")
    background = torch.from_numpy(~np.asarray(subject)).double()[None, None]  # (1, 1, H, W)
    pixels = torch.from_numpy(np.array(image.transpose(2, 0, 1))).double()[None]  # (1, C, H, W)
    num, den = _gaussian(pixels * background, radius), _gaussian(background, radius)
    blurred = (num / den.clamp_min(1e-12)).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    return np.where(subject[..., None], image, blurred)


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x (1, C, H, W)`` convolved with a Gaussian of standard deviation ``sigma`` (cut at 3 sigma), zero
    outside the image; separable, in ``x``'s dtype."""
    half = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-half, half + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    C = x.shape[1]
    rows = kernel.view(1, 1, 1, -1).repeat(C, 1, 1, 1)
    cols = kernel.view(1, 1, -1, 1).repeat(C, 1, 1, 1)
    x = F.conv2d(x, rows, padding=(0, half), groups=C)
    return F.conv2d(x, cols, padding=(half, 0), groups=C)


def replace_background(image: np.ndarray, subject: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Background pixels taken from ``background`` (uint8, resized to cover the image, centre-cropped)."""
    from PIL import Image

    _check(image, subject)
    H, W = image.shape[:2]
    bg = Image.fromarray(background[..., 0] if background.shape[2] == 1 else background)
    scale = max(H / bg.height, W / bg.width)
    rw, rh = max(W, round(bg.width * scale)), max(H, round(bg.height * scale))
    bg = bg.resize((rw, rh), Image.Resampling.BICUBIC).convert("L" if image.shape[2] == 1 else "RGB")
    left, top = (rw - W) // 2, (rh - H) // 2
    bg_a = np.asarray(bg.crop((left, top, left + W, top + H)), dtype=np.uint8).reshape(image.shape)
    return np.where(subject[..., None], image, bg_a)


def remove_subject(mae: MAE, image: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """Object removal: hide every patch the subject touches from the MAE encoder and fill the subject's
    pixels with the decoder's prediction. Pixels outside ``subject`` are returned byte-identical.

    The image is resized to the MAE's size for the fill; a model-size pixel counts as subject when any
    full-size pixel under it does, and the subject's pixels are set to the background's mean colour before the
    resize, so no subject colour leaks into what the encoder sees. The image keeps its
    channels: a colour image given to a gray MAE is filled in gray (the fill replicated to RGB under the
    subject), a gray image given to a colour MAE with the fill's luma.
    """
    _check(image, subject)
    cfg = mae.config
    if cfg.objective != "reconstruct":
        raise ValueError("removing a subject needs a pretrained MAE (a fine-tuned classifier has no decoder)")
    if cfg.norm_pix_loss:
        raise ValueError("this MAE was trained with norm_pix_loss: it cannot predict a hidden patch's own colour; "
                         "use a run trained without it")  # fmt: skip
    H, W = image.shape[:2]
    if subject.all():
        raise ValueError("the subject covers every patch of the image: nothing is left to fill it from")
    seen = with_channels(image, cfg.channels)  # what the MAE reads; the result keeps the image's channels
    # The subject's pixels are replaced by the background's mean before the resize: the antialiasing kernel
    # reaches past one model pixel, and would carry subject colour into visible patches.
    seen = np.where(subject[..., None], seen[~subject].mean(axis=0).round().astype(np.uint8), seen)
    full = torch.from_numpy(np.array(seen.transpose(2, 0, 1))).float()[None] / 255.0  # (1, C, H, W)
    small = F.interpolate(full, size=cfg.image_size, mode="bilinear", antialias=True, align_corners=False)
    subject_t = torch.from_numpy(np.array(subject))  # a copy: the caller's array may be read-only
    cover = F.interpolate(subject_t[None, None].float(), size=cfg.image_size, mode="area")[:, 0]
    masked = masked_from_pixels(cover > 0, cfg.patch_size)  # (1, L) True = patch hidden from the encoder
    if masked.all():
        raise ValueError("the subject covers every patch of the image: nothing is left to fill it from")
    device = next(mae.parameters()).device
    with torch.no_grad():
        recon = mae.reconstruct(small.clamp(0, 1).to(device), masked.to(device)).float().cpu()  # (1, C, h, w)
    recon = F.interpolate(recon, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    fill = (recon[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)  # (H, W, C of the MAE)
    return np.where(subject[..., None], with_channels(fill, image.shape[2]), image)


def save_png(path: str | Path, pixels: np.ndarray) -> Path:
    """uint8 ``(H, W, C)`` (C = 1, 3 or 4) written losslessly and atomically as PNG; ``path`` must end in
    ``.png`` (a ``ValueError`` otherwise: PNG bytes under ``out.jpg`` would mislead)."""
    from PIL import Image

    from masklab.data.pixel_masks import write_png

    return write_png(Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels), path, "the edited image")
