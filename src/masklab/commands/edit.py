"""``masklab edit RUN IMAGE --remove-background | --blur-background | --replace-background BG | --remove-subject``.

The subject mask comes from the segmentation head trained on RUN (``masklab segment train RUN``) or from a
hand-made ``--mask MASK.png`` (white = subject, the image's size). ``--remove-subject`` hides the subject's
patches from RUN's MAE and fills them: only pixels under the mask change. The logic lives in
:mod:`masklab.recipes.edit`.
"""

from __future__ import annotations

import argparse

from masklab.commands.segment import parse_box


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "edit", help="mask-guided edits: cut out / blur / replace background, remove subject"
    )
    parser.add_argument("run", metavar="RUN", help="MAE run (with a head in RUN/segment unless --mask is given)")
    parser.add_argument("image", metavar="IMAGE", help="image to edit")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--remove-background", action="store_true", help="RGBA cut-out of the subject")
    action.add_argument("--blur-background", action="store_true", help="blur everything but the subject")
    action.add_argument("--replace-background", metavar="BG", default=None, help="paste the subject on image BG")
    action.add_argument("--remove-subject", action="store_true", help="fill the subject's pixels with the MAE")
    parser.add_argument("--mask", default=None, help="hand-made mask PNG (white = subject) instead of predicting")
    parser.add_argument("--box", type=parse_box, default=None, help="predicted mask: keep subjects inside x0,y0,x1,y1")
    parser.add_argument("--radius", type=float, default=3.0, help="--blur-background: Gaussian radius in pixels")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes import edit

    channels = 3
    mae = None
    if args.remove_subject:
        from masklab.recipes.segment import load_mae

        mae = load_mae(args.run, args.device)
        channels = mae.config.channels
    seg = None
    if args.mask is None:
        from masklab.recipes.segment import load_segmenter

        seg = load_segmenter(args.run, args.device)
        channels = seg.mae.config.channels
    image = edit.read_image(args.image, channels)
    subject = edit.read_subject(args.mask, image) if seg is None else edit.subject_mask(seg, image, args.box)
    if args.remove_background:
        out = edit.remove_background(image, subject)
    elif args.blur_background:
        out = edit.blur_background(image, subject, args.radius)
    elif args.replace_background is not None:
        out = edit.replace_background(image, subject, edit.read_image(args.replace_background, image.shape[2]))
    else:
        out = edit.remove_subject(mae, image, subject)
    path = edit.save_png(args.output, out)
    print(f"wrote {path} ({int(subject.sum())} subject pixels of {subject.size})")
    return 0
