"""``masklab pretrain mae``: arguments of :func:`masklab.recipes.mae.pretrain_mae`."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_train_args, parse_hw, pretrain_call

MASK_KINDS = ("random", "block", "grid", "learned", "attention-high", "attention-low")
FIELDS = ("data", "preset", "image_size", "patch_size", "mask", "mask_ratio", "variant", "norm_pix_loss",
          "crop_scale", "flip", "no_augment", "skip_bad", "column")  # fmt: skip


def _image_size(text: str) -> tuple[int, int]:
    return parse_hw(text, "an image size like 28 or 32x48")


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("--data", help="folder, .tar shards, .npy/.npz, a datasets save_to_disk folder, or "
                        "builtin:NAME (default builtin:mnist5k)")  # fmt: skip
    parser.add_argument("--column", help="the Image column of a datasets folder (default: its only one)")
    parser.add_argument(
        "--preset", help="mae-tiny | mae-small-28 | mae-seg-32 | mae-vit-t | mae-vit-b (default mae-small-28)"
    )
    parser.add_argument("--image-size", type=_image_size, help="resize to HxW (default: data/preset)")
    parser.add_argument("--patch-size", type=int, help="pixels per patch side (default: the preset's)")
    parser.add_argument("--mask-ratio", type=float, help="fraction of patches hidden (default 0.75)")
    parser.add_argument("--mask", choices=MASK_KINDS,
                        help="which patches to hide (default random): random (MAE), block (BEiT), grid, learned (an "
                        "adversarial masker trained to maximise the loss), attention-high/-low (the patches the "
                        "encoder's [CLS] attention ranks highest/lowest, AttMask)")  # fmt: skip
    parser.add_argument("--variant", choices=("mae", "simmim"),
                        help="mae (default): encoder sees visible patches only; simmim: also mask tokens")  # fmt: skip
    parser.add_argument(
        "--norm-pix-loss", action="store_true", default=None, help="predict per-patch normalised pixels"
    )
    parser.add_argument("--crop-scale", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="random-resized-crop area range (default 0.2 1.0; 0.6 1.0 for digits)")  # fmt: skip
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="random horizontal flips (default: on, off for digits)")  # fmt: skip
    parser.add_argument("--no-augment", action="store_true", default=None, help="no crop/flip augmentation")
    parser.add_argument("--skip-bad", action="store_true", default=None,
                        help="skip unreadable images (counted) instead of failing")  # fmt: skip
    add_train_args(parser, steps="20 epochs", batch_size="per preset", lr="per preset", warmup="5%% of the steps",
                   ckpt_every=100)  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.mae import pretrain_mae

    pretrain_call(pretrain_mae, args, FIELDS)
    return 0
