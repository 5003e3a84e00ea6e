"""``masklab fill RUN "The [MASK] won the match." --top-k 5``: fill-mask with a trained MLM.

RUN is a masklab ``mlm`` run directory or a Hugging Face ``BertForMaskedLM`` folder (config.json,
model.safetensors with the ``cls.predictions`` head, tokenizer.json or vocab.txt). Inference is deterministic:
only the [MASK] tokens the text contains are predicted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("fill", help="predict the [MASK] tokens of a text with a trained MLM")
    parser.add_argument("run", metavar="RUN", help="mlm run directory, or an HF BertForMaskedLM folder")
    parser.add_argument("text", help='text with one or more [MASK] tokens, e.g. "The [MASK] won the match."')
    parser.add_argument("--top-k", type=int, default=5, help="candidates per [MASK] (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_run)


def load_fill_model(run: Path, device: str):
    """(model, tokenizer) from a masklab run or an HF folder (:func:`masklab.train.runs.load_mlm`)."""
    from masklab.train.runs import load_mlm

    return load_mlm(run, device)


def format_fill(results: list[dict]) -> str:
    lines = []
    for n, result in enumerate(results, start=1):
        lines.append(f"[MASK] {n} (token position {result['position']})")
        lines.append(f"  {'rank':>4}  {'token':<20} {'probability':>11}")
        for rank, (token, prob) in enumerate(result["candidates"], start=1):
            lines.append(f"  {rank:>4}  {token:<20} {prob:>11.4f}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    model, tokenizer = load_fill_model(Path(args.run), args.device)
    from masklab.models.mlm.fill import fill_mask

    results = fill_mask(model, tokenizer, args.text, args.top_k)
    print(json.dumps(results, indent=2) if args.json else format_fill(results))
    return 0
