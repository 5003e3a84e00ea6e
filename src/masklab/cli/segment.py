"""``masklab segment`` and ``masklab edit``: subject masks from an MAE run and mask-guided edits.

    masklab segment train RUN [--data DIR|builtin:synthetic-subjects] [--preset probe|finetune]
    masklab segment RUN IMAGE -o mask.png [--box x0,y0,x1,y1]
    masklab edit RUN IMAGE --remove-background | --blur-background | --replace-background BG | --remove-subject
                 [--mask MASK.png] -o out.png

``DIR`` holds ``images/`` and ``masks/`` paired by file name (white = subject, or palette class indices). The
head is written to ``RUN/segment``; prediction also writes ``<mask>_side.png`` (image | mask | overlay). The
logic lives in :mod:`masklab.recipes.segment` and :mod:`masklab.recipes.edit`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` -> four ints (``ArgumentTypeError`` otherwise)."""
    try:
        parts = tuple(int(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected a box x0,y0,x1,y1 in pixels, got {text!r}")
    return parts


def _load_head(run: str, device: str):
    """The segmenter of ``run``, with a warning on stderr when its head stopped before its planned steps."""
    from masklab.recipes.segment import load_segmenter, unfinished_head

    seg = load_segmenter(run, device)
    unfinished = unfinished_head(run)
    if unfinished:
        print(f"masklab: warning: {unfinished}", file=sys.stderr)
    return seg


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    if name == "edit":
        _register_edit(parser)
        return
    parser.usage = "masklab segment train RUN [--data DATA] ... | masklab segment RUN IMAGE -o MASK.png [--box ...]"
    parser.add_argument("first", metavar="train|RUN", help="'train', or the MAE run to predict with")
    parser.add_argument("second", metavar="RUN|IMAGE", help="the MAE run to train on, or the image to segment")
    parser.add_argument("--data", default="builtin:synthetic-subjects",
                        help="train: folder of images/ + masks/, or builtin:synthetic-subjects (default)")  # fmt: skip
    parser.add_argument("--preset", default="probe", help="train: probe (frozen encoder; the default) | finetune")
    parser.add_argument("--epochs", type=float, default=20.0, help="train: passes over the training split (default 20)")
    parser.add_argument("--steps", type=int, default=None, help="train: optimizer steps (overrides --epochs)")
    parser.add_argument("--batch-size", type=int, default=64, help="train: images per step (default 64)")
    parser.add_argument("--lr", type=float, default=None, help="train: AdamW peak (default 2e-3 probe, 1e-3 finetune)")
    parser.add_argument("--out", default=None, help="train: output folder (default RUN/segment)")
    parser.add_argument("--seed", type=int, default=0, help="train: seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("-o", "--output", default=None, help="predict: mask PNG to write")
    parser.add_argument(
        "--box",
        type=parse_box,
        default=None,
        help="predict: crop the mask to x0,y0,x1,y1 (pixels outside are background)",
    )
    parser.set_defaults(func=_segment)


def _segment(args: argparse.Namespace) -> int:
    if args.first == "train":
        from masklab.cli._args import check_out
        from masklab.recipes.segment import SEGMENT_DIR, train_segmenter

        check_out(args.out if args.out is not None else str(Path(args.second) / SEGMENT_DIR))  # before any work
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

    from masklab.data.pixel_masks import require_png_name, write_mask
    from masklab.recipes.common import check_output_is_not_input, check_writable
    from masklab.recipes.images import note_transparency
    from masklab.recipes.segment import predict_mask, read_image, save_side_by_side

    require_png_name(args.output)  # before any work
    side_path = Path(args.output).with_name(Path(args.output).stem + "_side.png")
    check_writable(args.output)
    for path, what in ((args.output, "-o"), (side_path, "the side-by-side picture")):
        check_output_is_not_input(path, args.second, "segment")
        if Path(path).is_dir():
            raise ValueError(f"{what} {path} is a directory; masklab segment writes {Path(args.output).name} and "
                             f"{side_path.name} beside it")  # fmt: skip
    seg = _load_head(args.first, args.device)
    image = read_image(args.second, seg.mae.config.channels)
    note_transparency([args.second])
    classes = predict_mask(seg, image, args.box)
    K = seg.config.num_classes
    out = write_mask(args.output, classes.numpy() > 0 if K == 2 else classes.numpy(), num_classes=K)
    side = save_side_by_side(side_path, image, classes)
    share = float((classes > 0).float().mean())
    print(f"wrote {out} ({100 * share:.1f}% subject pixels) and {Path(side).name}")
    return 0


def _register_edit(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The subject mask comes from the head trained on RUN (masklab segment train RUN) or from a hand-made "
        "--mask MASK.png (white = subject, the image's size). --remove-subject hides the subject's patches from "
        "RUN's MAE and fills them: only pixels under the mask change."
    )
    parser.add_argument("run", metavar="RUN", help="MAE run (with a head in RUN/segment unless --mask is given)")
    parser.add_argument("image", metavar="IMAGE", help="image to edit")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--remove-background", action="store_true", help="RGBA cut-out of the subject")
    action.add_argument("--blur-background", action="store_true", help="blur everything but the subject")
    action.add_argument("--replace-background", metavar="BG", default=None, help="paste the subject on image BG")
    action.add_argument("--remove-subject", action="store_true", help="fill the subject's pixels with the MAE")
    parser.add_argument("--mask-image", "--mask", dest="mask_image", metavar="MASK", default=None,
                        help="hand-made mask PNG (white = subject) instead of a predicted one")  # fmt: skip
    parser.add_argument(
        "--box",
        type=parse_box,
        default=None,
        help="predicted mask: crop it to x0,y0,x1,y1 (pixels outside are background)",
    )
    parser.add_argument("--radius", type=float, default=3.0, help="--blur-background: blur radius in px (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.set_defaults(func=_edit)


def _edit(args: argparse.Namespace) -> int:
    from masklab.data.pixel_masks import require_png_name
    from masklab.recipes import edit
    from masklab.recipes.images import note_transparency

    require_png_name(args.output, "the edited image")  # before any work
    from masklab.recipes.common import check_output_is_not_input, check_writable

    check_writable(args.output)
    for source in (args.image, args.mask_image, args.replace_background):
        if source is not None:
            check_output_is_not_input(args.output, source, "edit")
    if args.box is not None and args.mask_image is not None:
        raise ValueError("--box crops the predicted mask; with --mask the mask is used as given")
    mae, seg = None, None
    if args.remove_subject:
        from masklab.recipes.segment import load_mae

        mae = load_mae(args.run, args.device)
    if args.mask_image is None:
        seg = _load_head(args.run, args.device)
    elif mae is None and not Path(args.run).is_dir():  # not read for this edit, but a mistyped RUN is said
        raise FileNotFoundError(f"RUN {args.run} is not a folder (the MAE run; with --mask it is read only by "
                                "--remove-subject)")  # fmt: skip
    # A colour picture stays colour (only the edited pixels may change); a gray one is written gray for a gray
    # model and as RGB otherwise (as before: a background may bring colour).
    image = edit.read_image(args.image, None)
    note_transparency([p for p in (args.image, args.replace_background) if p is not None])
    model = seg.mae if seg is not None else mae
    image = edit.with_channels(image, max(image.shape[2], 3 if model is None else model.config.channels))
    if mae is not None and mae.config.channels == 1 and image.shape[2] == 3:
        print(f"masklab: note: the MAE takes gray images; the subject of {args.image} is filled in gray "
              "(pixels outside the mask keep their colour)", file=sys.stderr)  # fmt: skip
    subject = edit.read_subject(args.mask_image, image) if seg is None else edit.subject_mask(seg, image, args.box)
    if args.remove_background:
        out = edit.remove_background(image, subject)
    elif args.blur_background:
        out = edit.blur_background(image, subject, args.radius)
    elif args.replace_background is not None:
        out = edit.replace_background(image, subject, edit.read_image(args.replace_background, image.shape[2]))
    elif mae is not None:  # --remove-subject (the action group is required, so it is the one left)
        out = edit.remove_subject(mae, image, subject)
    else:
        raise ValueError("choose one of --remove-background, --blur-background, --replace-background, --remove-subject")
    path = edit.save_png(args.output, out)
    print(f"wrote {path} ({int(subject.sum())} subject pixels of {subject.size})")
    return 0
