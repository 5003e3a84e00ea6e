"""``masklab masks``: render example masks of each generator kind as a PNG, to see what each one hides."""

from __future__ import annotations

import argparse

from masklab.commands._common import parse_hw

KINDS = ("random", "block", "span", "grid", "learned")


def _grid(text: str) -> tuple[int, int]:
    return parse_hw(text, "a token grid like 14x14 or 7")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "masks",
        help="render example masks of each generator as a PNG",
        description="Draw COUNT example masks per generator kind, one row each, on a token grid (hidden = "
        "shaded). With --data the masks are drawn over example images; 'learned' uses an untrained, "
        "randomly initialised learned masker scoring those images' patches.",
    )
    parser.add_argument("--kind", nargs="+", choices=KINDS, default=None,
                        help="generators to draw (default: all that fit the grid and ratio)")  # fmt: skip
    parser.add_argument("--grid", type=_grid, default=(14, 14), help="token grid, e.g. 14x14 (default)")
    parser.add_argument("--ratio", type=float, default=0.75, help="fraction hidden (default 0.75)")
    parser.add_argument("--count", type=int, default=8, help="examples per kind (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data", default="builtin:mnist5k", help="images under the masks: a path, builtin:NAME, or 'none'"
    )
    parser.add_argument("--run", default=None,
                        help="an MAE run: add a row of its own training masks (e.g. its trained learned masker) "
                        "over --data images; the grid and ratio become the run's")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from masklab.viz.masks import grid_cell_for, render_masks

    if not 0 <= args.ratio < 1:
        raise ValueError(f"--ratio must be in [0, 1), got {args.ratio}")
    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    model = None
    if args.run is not None:
        model = _run_model(args.run)
        args.grid, args.ratio = model.config.grid, model.config.mask_ratio
        if args.data == "none":
            raise ValueError("--run draws the run's masks of real images: give --data, not 'none'")
    kinds = args.kind
    if kinds is None and model is not None:
        kinds = ["random"]  # the reference row next to the run's own masks
    if kinds is None:  # all kinds, except grid masking where the grid has no cell size for this ratio
        kinds = list(KINDS if args.data != "none" else KINDS[:-1])
        try:
            grid_cell_for(args.ratio, args.grid)
        except ValueError as err:
            kinds.remove("grid")
            print(f"skipping grid: {err}")
    images, source = None, ""
    if args.data != "none":
        from masklab.data.images import load_images

        size = None if model is None else model.config.image_size
        channels = None if model is None else model.config.channels
        dataset = load_images(args.data, image_size=size, channels=channels)
        if len(dataset) < args.count:
            raise ValueError(f"--data {args.data} has {len(dataset)} images, fewer than --count {args.count}")
        # A seeded draw, not the first COUNT rows: mnist5k is sorted by class.
        pick = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed))[: args.count]
        images, source = dataset.images(pick), args.data
    elif "learned" in kinds:
        raise ValueError("--kind learned scores image patches: give --data (e.g. builtin:mnist5k), not 'none'")
    extra = []
    if model is not None:
        generator = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            masked = model.sample_mask(args.count, generator=generator, x=model.normalize(images)).masked
        extra.append((f"run: {model.config.mask_kind}", masked))
    path = render_masks(args.output, kinds, grid=args.grid, ratio=args.ratio, count=args.count,
                        seed=args.seed, images=images, source=source, extra_rows=extra)  # fmt: skip
    print(f"wrote {path}: {len(kinds) + len(extra)} rows x {args.count} masks on a {args.grid[0]}x{args.grid[1]} grid")
    return 0


def _run_model(run: str):
    """The MAE of a pretraining run (the only runs whose masks are drawn over images)."""
    from pathlib import Path

    from masklab.apps.mae import load_run_model

    if not (Path(run) / "config.json").is_file():
        raise ValueError(f"--run {run}: no config.json there (not a masklab run directory)")
    model = load_run_model(run, "cpu").eval()  # ValueError naming the kind for a run that is not an MAE
    if model.config.objective != "reconstruct":
        raise ValueError(f"--run {run} is a fine-tuned classifier; give a pretraining run")
    return model
