"""BERT-style masked language modelling on BBC News: pretrain a tiny model, then fill a [MASK]."""

from __future__ import annotations

import argparse

from masklab.recipes import TrainOptions, fill, pretrain_mlm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default="runs/example-mlm")
    args = parser.parse_args()
    result = pretrain_mlm(args.out, data="builtin:bbc-news", preset="bert-tiny", seq_len=64,
                          train=TrainOptions(steps=args.steps))  # fmt: skip
    print(f"pretrained {result.step} steps, last loss {result.last_metrics['loss']:.4f}")
    print(fill(args.out, "The bank raised interest [MASK]."))


if __name__ == "__main__":
    main()
