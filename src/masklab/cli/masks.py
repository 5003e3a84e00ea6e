"""``masklab masks -o masks.png``: :func:`masklab.recipes.mask_examples.masks`."""

from __future__ import annotations

import argparse

from masklab.cli._args import parse_hw

KINDS = ("random", "block", "span", "grid", "learned")


def _grid(text: str) -> tuple[int, int]:
    return parse_hw(text, "a token grid like 14x14 or 7")


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = ("Draw COUNT example masks per generator kind, one row each, on a token grid (hidden = "
                          "shaded). With --data the masks are drawn over example images; 'learned' uses an "
                          "untrained, randomly initialised learned masker scoring those images' patches.")  # fmt: skip
    parser.add_argument("--kind", nargs="+", choices=KINDS, default=None,
                        help="generators to draw (default: all that fit the grid and ratio)")  # fmt: skip
    parser.add_argument("--grid", type=_grid, default=(14, 14), help="token grid, e.g. 14x14 (default)")
    parser.add_argument("--ratio", type=float, default=0.75, help="fraction hidden (default 0.75)")
    parser.add_argument("--count", type=int, default=8, help="examples per kind (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None,
                        help="images under the masks: a path, builtin:NAME, or 'none' (default: the --run's own "
                        "data, else builtin:mnist5k)")  # fmt: skip
    parser.add_argument("--run", default=None,
                        help="an MAE run: add a row of its own training masks (e.g. its trained learned masker) "
                        "over --data images; the grid and ratio become the run's")  # fmt: skip
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.mask_examples import masks

    lines = masks(args.output, kinds=args.kind, grid=args.grid, ratio=args.ratio, count=args.count, seed=args.seed,
                  data=args.data, run=args.run)  # fmt: skip
    print("\n".join(lines))
    return 0
