"""A tiny masked-regression model and dataset for the training-loop tests, also runnable as a script.

The model draws its masking noise from the loop generator and has dropout (torch's global RNG), and the
data augments with the loop generator, so a resume that forgot any RNG state would diverge.

    python tests/train/train_tiny.py OUT_DIR --steps 300 --ckpt-every 20 [--resume] [--step-delay 0.01]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from masklab.core.contract import LossOutput
from masklab.train import TrainConfig, fit


class TinyModel(nn.Module):
    """Hide random input features behind a learned mask token, regress the target."""

    def __init__(self, dim: int = 8, hidden: int = 32, mask_ratio: float = 0.25, dropout: float = 0.1) -> None:
        super().__init__()
        self.dim, self.hidden, self.mask_ratio, self.dropout = dim, hidden, mask_ratio, dropout
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.inp = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 1)

    @classmethod
    def from_config(cls, config: dict) -> TinyModel:
        return cls(**{k: v for k, v in config.items() if k != "kind"})

    def config(self) -> dict:
        return {"kind": "tiny-test", "dim": self.dim, "hidden": self.hidden, "mask_ratio": self.mask_ratio,
                "dropout": self.dropout}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.relu(self.norm(self.inp(x))))).squeeze(-1)

    def training_loss(self, batch: dict, generator: torch.Generator) -> LossOutput:
        x = batch["x"]  # (B, C)
        masked = (torch.rand(x.shape, generator=generator) < self.mask_ratio).to(x.device)  # (B, C)
        x = torch.where(masked, self.mask_token.expand_as(x), x)
        loss = F.mse_loss(self(x), batch["y"])
        return LossOutput(loss, {"masked_frac": masked.float().mean()})


class TinyData:
    """A fixed random linear-regression problem; ``get_batch`` adds generator-drawn input noise."""

    def __init__(self, n: int = 96, dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.randn(dim, generator=g)
        self.batch_sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> dict:
        self.batch_sizes.append(len(indices))
        x = self.x[indices]
        return {"x": x + 0.01 * torch.randn(x.shape, generator=generator), "y": self.y[indices]}


def make_config(**overrides) -> TrainConfig:
    base = dict(steps=30, batch_size=16, lr=3e-3, warmup_steps=5, log_every=5, ckpt_every=10, device="cpu")
    return TrainConfig(**{**base, **overrides})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--ckpt-every", type=int, default=20)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes building batches")
    parser.add_argument("--no-plot", action="store_true", help="hide matplotlib (saves ~1 s per run)")
    args = parser.parse_args()
    if args.no_plot:
        sys.modules["matplotlib"] = None  # fit then skips loss.png with a one-line note
    # Bit-identical results need the same reduction order in both runs.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TinyModel()
    cfg = make_config(steps=args.steps, ckpt_every=args.ckpt_every, log_every=args.log_every, workers=args.workers)
    # The delay only slows the run down so the test can kill it mid-way; it touches no numbers.
    delay = (lambda step, values: time.sleep(args.step_delay)) if args.step_delay else None
    fit(model, TinyData(), cfg, args.out_dir, model_config=model.config(), resume=args.resume,
        progress=False, on_step=delay)  # fmt: skip


if __name__ == "__main__":
    main()
