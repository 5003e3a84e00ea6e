"""``masklab inpaint RUN IMAGE --mask MASK.png -o out.png``: fill a user-drawn region with an MAE run.

``MASK.png`` has the image's size; white (>= 128 gray) marks pixels to fill (masklab polarity: True =
hidden). Every patch a white pixel touches is hidden from the encoder, the decoder predicts it, and the
prediction (resized back to the image's own resolution) replaces exactly the white pixels; all other pixels
are the original ones.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("inpaint", help="fill the white region of MASK.png in IMAGE with an MAE run")
    parser.add_argument("run", metavar="RUN", help="MAE training run directory")
    parser.add_argument("image", metavar="IMAGE", help="image file to repair")
    parser.add_argument("--mask", required=True, help="mask image of the same size; white = fill")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", required=True, help="output PNG (the input's size)")
    parser.set_defaults(func=_run)


def _read(path: str, what: str):
    from pathlib import Path

    from masklab.data.images import open_image

    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return open_image(Path(path))


def _run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from masklab.apps.mae import load_run_model
    from masklab.data.images import read_image_paths
    from masklab.tokenizers.patches import patch_mask_from_pixels
    from masklab.viz.grids import save_image

    model = load_run_model(args.run, args.device)
    cfg = model.config
    if cfg.objective != "reconstruct":
        raise ValueError(f"{args.run} is a fine-tuned classifier; inpainting needs a pretrained MAE run")
    if cfg.norm_pix_loss:
        raise ValueError(
            f"{args.run} was trained with norm_pix_loss: it predicts each patch up to its unknown mean and "
            "variance, which cannot be recovered for hidden patches; inpaint with a run trained without it"
        )
    full = read_image_paths([args.image], image_size=None, channels=cfg.channels, min_side=cfg.patch_size).images()
    mask_img = _read(args.mask, "mask")
    H, W = full.shape[2:]
    if (mask_img.height, mask_img.width) != (H, W):
        raise ValueError(f"mask {args.mask} is {mask_img.height}x{mask_img.width}, image {args.image} is {H}x{W}")
    hidden_full = torch.from_numpy(np.asarray(mask_img.convert("L")) >= 128)  # (H, W) True = fill
    if not hidden_full.any():
        raise ValueError(f"mask {args.mask} has no white pixels: nothing to inpaint")
    small = F.interpolate(full, size=cfg.image_size, mode="bilinear", antialias=True, align_corners=False)
    # A model-size pixel is hidden when any full-size pixel it covers is (area > 0), so nothing to fill leaks in.
    cover = F.interpolate(hidden_full[None, None].float(), size=cfg.image_size, mode="area")[:, 0]  # (1, h, w)
    masked = patch_mask_from_pixels(cover > 0, cfg.patch_size)  # (1, L)
    if masked.all():
        raise ValueError(f"mask {args.mask} covers every {cfg.patch_size}x{cfg.patch_size} patch: nothing left to "
                         "condition on")  # fmt: skip
    device = next(model.parameters()).device
    with torch.inference_mode():
        recon = model.reconstruct(small.clamp(0, 1).to(device), masked.to(device)).cpu()  # (1, C, h, w)
    recon_full = F.interpolate(recon, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)
    out = torch.where(hidden_full[None, None], recon_full, full)[0]
    path = save_image(args.output, out)
    print(f"wrote {path}: {int(hidden_full.sum())} pixels filled ({int(masked.sum())} of {cfg.num_patches} "
          f"patches hidden at the model's {cfg.image_size[0]}x{cfg.image_size[1]} resolution)")  # fmt: skip
    return 0
