"""A GPT-style causal LM on Shakespeare: pretrain the character model, then continue a prompt."""

from __future__ import annotations

import argparse

from masklab.recipes import TrainOptions, generate, pretrain_clm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default="runs/example-clm")
    args = parser.parse_args()
    result = pretrain_clm(args.out, data="builtin:shakespeare", train=TrainOptions(steps=args.steps))
    print(f"pretrained {result.step} steps, last loss {result.last_metrics['loss']:.4f}")
    [(prompt, continuation)] = generate(args.out, ["ROMEO:"], max_tokens=80)  # a list of prompts in, pairs out
    print(prompt + continuation)


if __name__ == "__main__":
    main()
