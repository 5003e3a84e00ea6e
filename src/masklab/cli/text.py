"""``masklab fill``, ``generate`` and ``perplexity``: text runs (:mod:`masklab.recipes.mlm_tasks`,
:mod:`masklab.recipes.clm`)."""

from __future__ import annotations

import argparse
import json


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    {"fill": _fill_args, "generate": _generate_args, "perplexity": _perplexity_args}[name](parser)


def _fill_args(parser: argparse.ArgumentParser) -> None:
    parser.description = ("RUN is a masklab mlm run or a Hugging Face BertForMaskedLM folder. Deterministic: only "
                          "the [MASK] tokens the text contains are predicted.")  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="mlm run directory, or an HF BertForMaskedLM folder")
    parser.add_argument("text", help='text with one or more [MASK] tokens, e.g. "The [MASK] won the match."')
    parser.add_argument("--top-k", type=int, default=5, help="candidates per [MASK] (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_fill)


def format_fill(results: list[dict]) -> str:
    lines = []
    for n, result in enumerate(results, start=1):
        lines.append(f"[MASK] {n} (token position {result['position']})")
        lines.append(f"  {'rank':>4}  {'token':<20} {'probability':>11}")
        for rank, (token, prob) in enumerate(result["candidates"], start=1):
            lines.append(f"  {rank:>4}  {token:<20} {prob:>11.4f}")
    return "\n".join(lines)


def _fill(args: argparse.Namespace) -> int:
    from masklab.recipes.mlm_tasks import fill

    results = fill(args.run, args.text, top_k=args.top_k, device=args.device)
    print(json.dumps(results, indent=2) if args.json else format_fill(results))
    return 0


def _generate_args(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Sample a continuation of each PROMPT (batched with left padding, KV-cached). Sampling "
                          "is seeded: the same --seed gives the same text.")  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="a run directory written by 'masklab pretrain clm'")
    parser.add_argument("prompts", metavar="PROMPT", nargs="+", help="text to continue (\\n is a newline)")
    parser.add_argument("--max-tokens", type=int, default=200, help="new tokens per prompt (default: 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    parser.add_argument("--greedy", action="store_true", help="argmax decoding (same as --temperature 0)")
    parser.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest tokens (0 = all)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with mass p")
    parser.add_argument("--stop", action="append", default=[], help="stop a row at this string (repeatable)")
    parser.add_argument("--num-samples", type=int, default=1, help="continuations per prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=_generate)


def _unescape(text: str) -> str:
    # Shells make a literal newline awkward to type; "\n" in a prompt or stop string means one.
    return text.replace("\\n", "\n")


def _generate(args: argparse.Namespace) -> int:
    from masklab.recipes.clm import generate

    pairs = generate(args.run, [_unescape(p) for p in args.prompts], max_tokens=args.max_tokens,
                     temperature=0.0 if args.greedy else args.temperature, top_k=args.top_k, top_p=args.top_p,
                     stop=[_unescape(s) for s in args.stop], num_samples=args.num_samples, seed=args.seed,
                     device=args.device)  # fmt: skip
    for i, (prompt, text) in enumerate(pairs):
        if i:
            print("-" * 40)
        print(prompt + text)
    return 0


def _perplexity_args(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Mean next-token cross entropy over non-overlapping windows of the model's context. "
                          "Without --data: the held-out end of the run's own training data. With --data: all of "
                          "that text (--split to pick).")  # fmt: skip
    parser.add_argument("run", metavar="RUN", help="a run directory written by 'masklab pretrain clm'")
    parser.add_argument("--data", default=None, help="a .txt/.jsonl file or folder, or builtin:NAME")
    parser.add_argument("--split", choices=("val", "train", "all"), default=None,
                        help="part of the stream to score (default: val for the run's data, all for --data)",
                        )  # fmt: skip  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batches", type=int, default=None, help="score at most this many batches")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_perplexity)


def _perplexity(args: argparse.Namespace) -> int:
    from masklab.recipes.clm import perplexity

    result = perplexity(args.run, data=args.data, split=args.split, batch_size=args.batch_size,
                        max_batches=args.max_batches, device=args.device)  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['data']} [{result['split']}]: loss {result['loss']:.4f} nats/token, perplexity "
              f"{result['perplexity']:.3f}, {result['bits_per_token']:.4f} bits/token over {result['tokens']:,} "
              "tokens")  # fmt: skip
    return 0
