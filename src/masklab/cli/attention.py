"""``masklab attention RUN INPUT -o attn.png``: :func:`masklab.recipes.attention_maps.attention`."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = ("Draw the attention weights of an mlm/clm run on a text (token x token heatmaps), or of "
                          "an mae run on an image ([CLS] attention rollout over the patches).")  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="training run directory (mae, mlm or clm)")
    parser.add_argument("input", metavar="INPUT", help="text runs: a text or a .txt file; image runs: an image "
                        "file or builtin:NAME[:INDEX], e.g. builtin:mnist5k:17")  # fmt: skip
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="image to write (PNG; another suffix matplotlib knows, e.g. .jpg or .svg, picks that format)",
    )
    parser.add_argument("--layer", type=int, default=None, help="draw only this layer (0-based; images: its "
                        "[CLS] row instead of the rollout over all layers)")  # fmt: skip
    parser.add_argument("--head", type=int, default=None, help="draw only this head (images: needs --layer)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="text runs: keep at most this many tokens, specials included (default: the model's "
                        "limit)")  # fmt: skip
    parser.add_argument("--weights-out", default=None, help="also save every layer's weights to this .safetensors")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.attention_maps import attention

    lines = attention(args.run, args.input, args.output, layer=args.layer, head=args.head,
                      max_tokens=args.max_tokens, weights_out=args.weights_out, device=args.device)  # fmt: skip
    print("\n".join(lines))
    return 0
