"""MAE on MNIST digits through the typed recipes: pretrain, reconstruct held-out images, linear probe."""

from __future__ import annotations

import argparse

from masklab.recipes import TrainOptions, pretrain_mae, probe_mae, reconstruct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", default="runs/example-mae")
    args = parser.parse_args()
    result = pretrain_mae(args.out, data="builtin:mnist5k", preset="mae-tiny", train=TrainOptions(steps=args.steps))
    print(f"pretrained {result.step} steps, last loss {result.last_metrics['loss']:.4f}")
    reconstruct(args.out, f"{args.out}/reconstruction.png", count=8)
    print(f"reconstructions -> {args.out}/reconstruction.png")
    print(probe_mae(args.out))


if __name__ == "__main__":
    main()
