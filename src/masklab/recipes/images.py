"""Looking at what an MAE run predicts: ``reconstruct`` (an image grid of held-out or given images) and
``inpaint`` (fill a user-drawn region). Pixel masks: True / white = hidden (to be filled)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from masklab.recipes.mae import load_mae_run, load_split
from masklab.recipes.progress import Progress, say


def note_transparency(paths: Sequence[str | Path]) -> None:
    """Say once on stderr which of ``paths`` had transparent pixels: they are read without alpha (as training
    reads pictures), so they show, and go into the model as, their stored colour."""
    from masklab.data.image_files import transparency_note

    note = transparency_note(paths)
    if note:
        print(f"masklab: note: {note}", file=sys.stderr)


def _pretrained(run: str | Path, device: str, task: str):
    model = load_mae_run(run, device)
    if model.config.objective != "reconstruct":
        raise ValueError(f"{run} is a fine-tuned classifier; {task} needs a pretrained MAE run")
    return model


def _images(run, model, images: Sequence[str], data: str | None, count: int, seed: int,
            skip_bad: bool = False) -> torch.Tensor:  # fmt: skip
    from masklab.data.images import read_image_paths
    from masklab.recipes.embedding import note_skipped, pictures_for_model

    cfg = model.config
    if images:
        if data is not None:
            raise ValueError("give IMAGE files or --data, not both")
        # Pictures looked at: each keeps its own channels, then the model's (a colour one for a gray model: said).
        dataset = read_image_paths(list(images), image_size=cfg.image_size, channels=None, min_side=cfg.patch_size,
                                   skip_bad=skip_bad)  # fmt: skip
        note_skipped(dataset.skipped, "image")
        note_transparency(dataset.sources)
        return pictures_for_model(dataset.images(), dataset.sources, cfg.channels)
    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    dataset, _, test_idx = load_split(data, run, model, skip_bad=skip_bad)
    note_skipped(dataset.skipped, "image")
    pick = torch.randperm(len(test_idx), generator=torch.Generator().manual_seed(seed))[:count]
    return dataset.images(test_idx[pick.sort().values])


def reconstruct(
    run: str | Path,
    output: str | Path,
    *,
    images: Sequence[str] = (),
    data: str | None = None,
    count: int = 8,
    mask_ratio: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a PNG grid, one row per image: original | masked input | reconstruction | reconstruction with the
    visible patches pasted back. Images are ``images`` files or ``count`` held-out examples of ``data``
    (default: the run's). Masks come from the run's generator (or random at ``mask_ratio``), seeded by
    ``seed``. ``skip_bad`` leaves unreadable (or smaller than one patch) files out, named once. Returns
    ``{"path", "images", "hidden_fraction", "psnr", "note"}`` (mean PSNR on hidden pixels, dB). A run trained
    with ``norm_pix_loss`` predicts hidden patches up to their unknown mean and variance: they are shown with
    the visible patches' mean/std (never the hidden pixels' own), the column is titled "recon (visible stats)"
    and ``note`` says so (None otherwise; :mod:`masklab.eval.reconstruction`). ``progress``: see
    :mod:`masklab.recipes.progress`."""
    from masklab.eval.reconstruction import reconstruction_views
    from masklab.masks.generators import random_masking
    from masklab.recipes.common import IMAGE_FORMATS, check_outputs, check_picture_output
    from masklab.viz.grids import save_grid

    check_outputs({"-o": output}, [*(("IMAGE", i) for i in images), ("--data", data)], "reconstruct")
    check_picture_output(output, IMAGE_FORMATS, "reconstruct")
    model = _pretrained(run, device, "reconstruct")
    cfg = model.config
    say(progress, f"reading {len(images) or count} images")
    batch = _images(run, model, images, data, count, seed, skip_bad)  # (B, C, H, W) in [0, 1]
    say(progress, f"reconstructing {len(batch)} images -> {output}")
    generator = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    if mask_ratio is not None:
        if not 0 < mask_ratio < 1:
            raise ValueError(f"--mask-ratio must be in (0, 1) (1 would hide every patch), got {mask_ratio}")
        if int(cfg.num_patches * (1 - mask_ratio)) < 1:
            raise ValueError(f"--mask-ratio {mask_ratio} leaves no visible patch out of {cfg.num_patches}")
        masked = random_masking(len(batch), cfg.num_patches, mask_ratio, generator=generator).masked
    else:  # the run's own masking (learned / attention kinds look at the images)
        with torch.inference_mode():
            masked = model.sample_mask(len(batch), generator=generator, x=model.normalize(batch.to(dev))).masked.cpu()
    views = reconstruction_views(model, batch, masked)
    rows = [[batch[i], views.masked_input[i], views.reconstruction[i], views.pasted[i]] for i in range(len(batch))]
    recon_title = "reconstruction" if views.note is None else "recon (visible stats)"
    path = save_grid(output, rows, titles=["original", "masked", recon_title, "+ visible"])
    return {"path": path, "images": len(batch), "hidden_fraction": masked.float().mean().item(),
            "psnr": sum(views.psnr) / len(views.psnr), "note": views.note}  # fmt: skip


def inpaint(run: str | Path, image: str | Path, mask: str | Path, output: str | Path, *,
            device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Fill the white (>= 128 gray) pixels of ``mask`` (an image of ``image``'s size) with the run's
    prediction; every other pixel stays the original. Every patch a white pixel touches is hidden from the
    encoder. Returns ``{"path", "pixels", "patches", "num_patches", "image_size"}``."""
    from masklab.data.images import open_image, read_image_paths
    from masklab.recipes.common import IMAGE_FORMATS, check_outputs, check_picture_output
    from masklab.tokenizers.patches import patch_mask_from_pixels
    from masklab.viz.grids import save_image

    check_outputs({"-o": output}, [("IMAGE", image), ("--mask-image", mask)], "inpaint")
    check_picture_output(output, IMAGE_FORMATS, "inpaint")
    model = _pretrained(run, device, "inpainting")
    cfg = model.config
    if cfg.norm_pix_loss:
        raise ValueError(
            f"{run} was trained with norm_pix_loss: it predicts each patch up to its unknown mean and "
            "variance, which cannot be recovered for hidden patches; inpaint with a run trained without it"
        )
    from masklab.recipes.embedding import pictures_for_model

    full = read_image_paths([image], image_size=None, channels=None, min_side=cfg.patch_size).images()
    note_transparency([image])
    full = pictures_for_model(full, [str(image)], cfg.channels)
    if not Path(mask).is_file():
        raise FileNotFoundError(f"mask {mask} does not exist")
    mask_img = open_image(Path(mask))
    H, W = full.shape[2:]
    if (mask_img.height, mask_img.width) != (H, W):
        raise ValueError(f"mask {mask} is {mask_img.height}x{mask_img.width}, image {image} is {H}x{W}")
    hidden_full = torch.from_numpy(np.asarray(mask_img.convert("L")) >= 128)  # (H, W) True = fill
    if not hidden_full.any():
        raise ValueError(f"mask {mask} has no white pixels: nothing to inpaint")
    small = F.interpolate(full, size=cfg.image_size, mode="bilinear", antialias=True, align_corners=False)
    # A model-size pixel is hidden when any full-size pixel it covers is (area > 0), so nothing to fill leaks in.
    cover = F.interpolate(hidden_full[None, None].float(), size=cfg.image_size, mode="area")[:, 0]  # (1, h, w)
    masked = patch_mask_from_pixels(cover > 0, cfg.patch_size)  # (1, L)
    if masked.all():
        raise ValueError(f"mask {mask} covers every {cfg.patch_size}x{cfg.patch_size} patch: nothing left to "
                         "condition on")  # fmt: skip
    dev = next(model.parameters()).device
    with torch.inference_mode():
        recon = model.reconstruct(small.clamp(0, 1).to(dev), masked.to(dev)).cpu()  # (1, C, h, w)
    recon_full = F.interpolate(recon, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    path = save_image(output, torch.where(hidden_full[None, None], recon_full, full)[0])
    return {"path": path, "pixels": int(hidden_full.sum()), "patches": int(masked.sum()),
            "num_patches": cfg.num_patches, "image_size": tuple(cfg.image_size)}  # fmt: skip
