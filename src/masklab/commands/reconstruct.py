"""``masklab reconstruct RUN [IMAGE...] -o grid.png``: what an MAE run sees and predicts, as an image grid.

One row per image: original | masked input | reconstruction | reconstruction with the visible patches pasted
back. Images are files given on the command line, or ``--count`` held-out examples of ``--data`` (default:
the run's own data, whose test split pretraining never saw). Masks are drawn with the run's generator and
ratio (or ``--mask-ratio``, random masking) from ``--seed``, so a grid is reproducible.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="grid of original | masked | reconstruction | reconstruction + visible (MAE runs)"
    )
    parser.add_argument("run", metavar="RUN", help="MAE training run directory")
    parser.add_argument("images", metavar="IMAGE", nargs="*", help="image files (default: held-out --data examples)")
    parser.add_argument("--data", default=None, help="dataset to take held-out examples from (default: the run's)")
    parser.add_argument("--count", type=int, default=8, help="held-out examples to show (default 8)")
    parser.add_argument("--mask-ratio", type=float, default=None, help="override the run's mask ratio")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks and of the example choice")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.set_defaults(func=_run)


def _images(args: argparse.Namespace, model):
    import torch

    from masklab.apps.mae import load_split
    from masklab.data.images import read_image_paths

    cfg = model.config
    if args.images:
        if args.data is not None:
            raise ValueError("give IMAGE files or --data, not both")
        dataset = read_image_paths(args.images, image_size=cfg.image_size, channels=cfg.channels,
                                   min_side=cfg.patch_size)  # fmt: skip
        return dataset.images()
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    dataset, _, test_idx = load_split(args.data, args.run, model)
    pick = torch.randperm(len(test_idx), generator=torch.Generator().manual_seed(args.seed))[: args.count]
    return dataset.images(test_idx[pick.sort().values])


def _run(args: argparse.Namespace) -> int:
    import torch

    from masklab.apps.mae import load_run_model
    from masklab.eval.reconstruction import reconstruction_views
    from masklab.masks.generators import random_masking
    from masklab.viz.grids import save_grid

    model = load_run_model(args.run, args.device)
    cfg = model.config
    if cfg.objective != "reconstruct":
        raise ValueError(f"{args.run} is a fine-tuned classifier; reconstruct needs a pretrained MAE run")
    images = _images(args, model)  # (B, C, H, W) in [0, 1]
    generator = torch.Generator().manual_seed(args.seed)
    if args.mask_ratio is not None:
        if not 0 < args.mask_ratio < 1:
            raise ValueError(f"--mask-ratio must be in (0, 1) (1 would hide every patch), got {args.mask_ratio}")
        if int(cfg.num_patches * (1 - args.mask_ratio)) < 1:
            raise ValueError(f"--mask-ratio {args.mask_ratio} leaves no visible patch out of {cfg.num_patches}")
        masked = random_masking(len(images), cfg.num_patches, args.mask_ratio, generator=generator).masked
    device = next(model.parameters()).device
    if args.mask_ratio is None:  # the run's own masking (learned / attention kinds look at the images)
        with torch.inference_mode():
            masked = model.sample_mask(len(images), generator=generator, x=model.normalize(images.to(device)))
            masked = masked.masked.cpu()
    views = reconstruction_views(model, images, masked)
    rows = [[images[i], views.masked_input[i], views.reconstruction[i], views.pasted[i]] for i in range(len(images))]
    path = save_grid(args.output, rows, titles=["original", "masked", "reconstruction", "+ visible"])
    ratio = masked.float().mean().item()
    print(f"wrote {path}: {len(images)} images, {100 * ratio:.0f}% of patches hidden, "
          f"mean PSNR on hidden pixels {sum(views.psnr) / len(views.psnr):.2f} dB")  # fmt: skip
    return 0
