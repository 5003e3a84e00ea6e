"""``masklab perplexity RUN``: next-token loss and perplexity of a causal LM (``clm``) run on text."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "perplexity",
        help="next-token loss / perplexity of a causal LM run on text",
        description="Mean next-token cross entropy over non-overlapping windows of the model's context. Without "
        "--data: the held-out end of the run's own training data. With --data: all of that text (--split to pick).",
    )
    parser.add_argument("run", metavar="RUN", help="a run directory written by 'masklab pretrain clm'")
    parser.add_argument("--data", default=None, help="a .txt/.jsonl file or folder, or builtin:NAME")
    parser.add_argument(
        "--split",
        choices=("val", "train", "all"),
        default=None,
        help="part of the stream to score (default: val for the run's data, all for --data)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batches", type=int, default=None, help="score at most this many batches")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from masklab.apps.clm import encode_stream, load_lm_run, resolve_device
    from masklab.data.lm import LMWindows, split_by_position
    from masklab.data.text import load_text_corpus
    from masklab.models.clm import evaluate_nll

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    model, tokenizer, info = load_lm_run(args.run, resolve_device(args.device))
    spec = args.data or info.get("data")
    if spec is None:
        raise ValueError(f"{args.run} does not record its training data; pass --data")
    split = args.split or ("all" if args.data else "val")
    stream = encode_stream(tokenizer, load_text_corpus(spec).texts)
    train, val = split_by_position(stream, info.get("val_fraction", 0.1) if split != "all" else 0.0)
    tokens = {"all": train, "train": train, "val": val}[split]
    context = model.config.context
    if len(tokens) < context + 1:
        raise ValueError(f"--data {spec} ({split}) has {len(tokens)} tokens, fewer than one window of {context + 1}")
    scores = evaluate_nll(model, LMWindows(tokens, context, stride=context), batch_size=args.batch_size,
                          max_batches=args.max_batches)  # fmt: skip
    result = {"run": str(args.run), "data": spec, "split": split, **scores}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{spec} [{split}]: loss {scores['loss']:.4f} nats/token, perplexity {scores['perplexity']:.3f}, "
              f"{scores['bits_per_token']:.4f} bits/token over {scores['tokens']:,} tokens")  # fmt: skip
    return 0
