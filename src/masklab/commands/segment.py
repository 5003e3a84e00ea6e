"""``masklab segment``: train a segmentation head on an MAE run, or predict a subject mask with it.

    masklab segment train RUN [--data DIR|builtin:synthetic-subjects] [--preset probe|finetune]
    masklab segment RUN IMAGE -o mask.png [--box x0,y0,x1,y1]

``DIR`` holds ``images/`` and ``masks/`` paired by file name (white = subject, or palette class indices).
The head is written to ``RUN/segment``; prediction also writes ``mask_side.png`` (image | mask | overlay).
The logic lives in :mod:`masklab.recipes.segment`.
"""

from __future__ import annotations

import argparse


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` -> four ints (``ArgumentTypeError`` otherwise)."""
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected a box x0,y0,x1,y1 in pixels, got {text!r}")
    return parts  # type: ignore[return-value]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment", help="train a subject/background head on an MAE run (segment train RUN) or predict a mask",
        usage="masklab segment train RUN [--data DATA] ... | masklab segment RUN IMAGE -o MASK.png [--box ...]",
    )  # fmt: skip
    parser.add_argument("first", metavar="train|RUN", help="'train', or the MAE run to predict with")
    parser.add_argument("second", metavar="RUN|IMAGE", help="the MAE run to train on, or the image to segment")
    parser.add_argument("--data", default="builtin:synthetic-subjects",
                        help="train: folder with images/ + masks/, or builtin:synthetic-subjects")  # fmt: skip
    parser.add_argument("--preset", default="probe", help="train: probe (frozen encoder) | finetune")
    parser.add_argument("--epochs", type=float, default=20.0, help="train: passes over the training split")
    parser.add_argument("--steps", type=int, default=None, help="train: optimizer steps (overrides --epochs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--out", default=None, help="train: output folder (default RUN/segment)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", default=None, help="predict: mask PNG to write")
    parser.add_argument("--box", type=parse_box, default=None, help="predict: keep subjects inside x0,y0,x1,y1")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.first == "train":
        from masklab.recipes.segment import train_segmenter

        result = train_segmenter(args.second, args.data, out=args.out, preset=args.preset, epochs=args.epochs,
                                 steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 device=args.device)  # fmt: skip
        s = result.scores
        print(f"segmentation head ({args.preset}) trained {result.steps} steps on {result.num_train} images -> "
              f"{result.out_dir}; held-out {result.num_test} images: IoU {s['iou']:.4f}  Dice {s['dice']:.4f}  "
              f"boundary F {s['boundary_f']:.4f}")  # fmt: skip
        return 0
    if args.output is None:
        raise ValueError("masklab segment RUN IMAGE needs -o MASK.png")
    from pathlib import Path

    from masklab.data.pixel_masks import write_mask
    from masklab.recipes.segment import load_segmenter, predict_mask, read_image, save_side_by_side

    seg = load_segmenter(args.first, args.device)
    image = read_image(args.second, seg.mae.config.channels)
    classes = predict_mask(seg, image, args.box)
    K = seg.config.num_classes
    out = write_mask(args.output, classes.numpy() > 0 if K == 2 else classes.numpy(), num_classes=K)
    side = save_side_by_side(out.with_name(out.stem + "_side.png"), image, classes)
    share = float((classes > 0).float().mean())
    print(f"wrote {out} ({100 * share:.1f}% subject pixels) and {Path(side).name}")
    return 0
