"""``masklab generate RUN PROMPT...``: continue text prompts with a trained causal LM (``clm``) run."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="continue text prompts with a trained causal LM run",
        description="Sample a continuation of each PROMPT (batched with left padding, KV-cached). Sampling is "
        "seeded: the same --seed gives the same text.",
    )
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
    parser.set_defaults(func=_run)


def _unescape(text: str) -> str:
    # Shells make a literal newline awkward to type; "\n" in a prompt or stop string means one.
    return text.replace("\\n", "\n")


def _run(args: argparse.Namespace) -> int:
    import torch

    from masklab.apps.clm import load_lm_run, resolve_device
    from masklab.models.clm.generation import generate_text

    if args.max_tokens < 0:
        raise ValueError(f"--max-tokens must be >= 0, got {args.max_tokens}")
    if args.num_samples < 1:
        raise ValueError(f"--num-samples must be >= 1, got {args.num_samples}")
    model, tokenizer, _ = load_lm_run(args.run, resolve_device(args.device))
    prompts = [_unescape(p) for p in args.prompts for _ in range(args.num_samples)]
    texts = generate_text(
        model,
        prompts,
        encode=lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
        decode=tokenizer.decode,
        stop=[_unescape(s) for s in args.stop],
        max_new_tokens=args.max_tokens,
        temperature=0.0 if args.greedy else args.temperature,
        top_k=args.top_k or None,
        top_p=args.top_p,
        generator=torch.Generator().manual_seed(args.seed),
        pad_id=tokenizer.role_id("pad") or 0,
    )
    for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
        if i:
            print("-" * 40)
        print(prompt + text)
    return 0
