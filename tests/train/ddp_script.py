"""Train a tiny model with ``fit``; run directly (1 process) or under torchrun (N processes, gloo on CPU).

python tests/train/ddp_script.py OUT --model tiny --steps 6 --batch-size 16 --grad-accum 2
python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_script.py OUT ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.modules["matplotlib"] = None  # no loss.png: saves a second per run

from masklab.train import TrainConfig, fit  # noqa: E402


def build(name: str):
    """(model, data, model_config) for a tiny instance of ``name``."""
    if name == "tiny":
        from train_tiny import TinyData, TinyModel

        model = TinyModel()
        return model, TinyData(n=96), model.config()
    raise ValueError(f"unknown model {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--ckpt-every", type=int, default=3)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial weights on every rank and in every run
    model, data, model_config = build(args.model)
    # Constant lr: runs with different `steps` then share one schedule, so a resumed run can be compared.
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=1e-2,
                      min_lr=1e-2, log_every=1, ckpt_every=args.ckpt_every, device="cpu")  # fmt: skip
    fit(model, data, cfg, args.out_dir, model_config=model_config, resume=args.resume, progress=False)


if __name__ == "__main__":
    main()
