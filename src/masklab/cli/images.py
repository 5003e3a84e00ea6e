"""``masklab reconstruct`` and ``masklab inpaint``: what an MAE run predicts (:mod:`masklab.recipes.images`)."""

from __future__ import annotations

import argparse

from masklab.cli.progress import add_quiet, reporting


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("run", metavar="RUN", help="MAE training run directory")
    if name == "reconstruct":
        parser.description = (
            "One row per image: original | masked input | reconstruction | reconstruction with the visible patches "
            "pasted back. Images are files, or --count held-out examples of --data (default: the run's own data, "
            "whose test split pretraining never saw). Masks use the run's generator and ratio (or --mask-ratio, "
            "random masking) from --seed, so a grid is reproducible. A run trained with --norm-pix-loss predicts each "
            "hidden patch up to its unknown mean and spread: it is shown with the visible patches' mean/std."
        )
        parser.add_argument(
            "images", metavar="IMAGE", nargs="*", help="image files (default: held-out --data examples)"
        )
        parser.add_argument("--data", default=None, help="dataset to take held-out examples from (default: the run's)")
        parser.add_argument("--count", type=int, default=8, help="held-out examples to show (default 8)")
        parser.add_argument("--mask-ratio", type=float, default=None, help="override the run's mask ratio")
        parser.add_argument("--seed", type=int, default=0, help="seed of the masks and of the example choice")
        parser.add_argument("--skip-bad", action="store_true",
                            help="leave out unreadable images (and ones smaller than a patch), named once")  # fmt: skip
        parser.set_defaults(func=_reconstruct)
    else:
        parser.description = (
            "MASK has the image's size; white (>= 128 gray) marks pixels to fill (True = hidden). Every patch a "
            "white pixel touches is hidden from the encoder; the prediction replaces exactly the white pixels."
        )
        parser.add_argument("image", metavar="IMAGE", help="image file to repair")
        parser.add_argument("--mask-image", dest="mask_image", metavar="MASK",
                            help="mask image of the same size; white = fill (required)")  # fmt: skip
        parser.add_argument("--mask", dest="mask_image", help=argparse.SUPPRESS)  # the old spelling
        parser.set_defaults(func=_inpaint)
    parser.add_argument("--device", default="cpu")
    add_quiet(parser)
    parser.add_argument("-o", "--output", required=True,
                        help="picture to write (PNG; .jpg, .webp, .bmp or .tif pick that format)")  # fmt: skip


def _reconstruct(args: argparse.Namespace) -> int:
    with reporting(args, "reconstruct") as progress:
        from masklab.recipes.images import reconstruct

        result = reconstruct(args.run, args.output, images=args.images, data=args.data, count=args.count,
                             mask_ratio=args.mask_ratio, seed=args.seed, device=args.device,
                             skip_bad=args.skip_bad, progress=progress)  # fmt: skip
    print(f"wrote {result['path']}: {result['images']} images, {100 * result['hidden_fraction']:.0f}% of patches "
          f"hidden, mean PSNR on hidden pixels {result['psnr']:.2f} dB")  # fmt: skip
    if result["note"]:
        print(f"  {result['note']} (the run was trained with --norm-pix-loss)")
    return 0


def _inpaint(args: argparse.Namespace) -> int:
    from masklab.cli import UsageError
    from masklab.recipes.images import inpaint

    if args.mask_image is None:
        raise UsageError("inpaint needs --mask-image MASK.png (white = fill)")
    with reporting(args, "inpaint"):
        r = inpaint(args.run, args.image, args.mask_image, args.output, device=args.device)
    print(f"wrote {r['path']}: {r['pixels']} pixels filled ({r['patches']} of {r['num_patches']} patches hidden "
          f"at the model's {r['image_size'][0]}x{r['image_size'][1]} resolution)")  # fmt: skip
    return 0
