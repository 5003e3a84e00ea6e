"""Learned (adversarial) vs random masking for MAE on mnist5k, after the same CPU time budget.

Two MAEs of one architecture train with masklab's ``fit`` for the same CPU-time budget (steps calibrated per
arm from measured CPU seconds per step): one on MAE's random masks, one on masks proposed by an
:class:`~masklab.models.mae.masker.AdversarialMasking` masker trained in the same backward (gradient
reversal) to maximise the MAE's hidden-patch loss (ADIOS / AutoMAE). On the 1,000 held-out digits the table
reports the hidden-patch MSE under random and learned masks (for both models), the share of hidden patches that
contain ink, and the linear-probe / k-NN accuracy of each encoder's frozen mean-pooled features.

    python bench/learned_masking.py --cpu-minutes 3        # ~7 minutes on a quiet CPU (1 thread)
    python bench/learned_masking.py --steps 20 --eval 200  # smoke test

The learned arm is exactly ``masklab pretrain mae --mask learned``: ``MAEConfig(mask_kind="learned")``, whose
masker trains in the same backward as the MAE (gradient reversal through the relaxed top-k mask).
``--attention`` adds a third arm, ``--mask attention-high`` (AttMask). Writes loadable ``mae`` runs
``OUT/random``, ``OUT/learned`` (and ``OUT/attention-high``) and ``OUT/learned_masks.png`` (held-out digits:
input, random mask, learned mask).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from masklab.core.contract import saved_config
from masklab.data.images import Augment, load_images, split_indices
from masklab.eval.probe import format_probe_table, probe_features
from masklab.masks.generators import random_masking
from masklab.models.mae import MAE, MAEConfig
from masklab.models.mae.masker import LearnedMaskerConfig
from masklab.tokenizers.patches import patchify, pixel_mask_from_patches
from masklab.train import TrainConfig, fit


def cpu_seconds_per_step(model: nn.Module, train_data, batch_size: int, lr: float) -> float:
    """CPU time of one training step, measured on a throwaway copy (the median of 4 after a warm-up step).

    Process CPU time, not wall clock: on a shared machine the other jobs' load would otherwise decide the budget.
    """
    probe = copy.deepcopy(model).train()
    optimizer = torch.optim.AdamW(probe.parameters(), lr=lr)
    g = torch.Generator().manual_seed(99)
    times = []
    for _ in range(5):
        start = time.process_time()
        batch = train_data.get_batch(torch.randint(len(train_data), (batch_size,), generator=g), g)
        probe.training_loss(batch, g).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.process_time() - start)
    return sorted(times[1:])[1]


def train(model: MAE, train_data, args, out: Path) -> tuple[int, float]:
    """Train for ``--steps``, or for the steps that fit ``--cpu-minutes`` of CPU time; returns (steps, CPU s)."""
    steps = args.steps
    if steps is None:
        per_step = cpu_seconds_per_step(model, train_data, args.batch_size, args.lr)
        steps = max(1, int(args.cpu_minutes * 60 / per_step))
    cfg = TrainConfig(steps=steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=min(args.warmup, steps // 5),
                      weight_decay=0.05, seed=args.seed, device="cpu", log_every=50, ckpt_every=steps)  # fmt: skip
    start = time.process_time()
    result = fit(model, train_data, cfg, out, model_config=saved_config(model), progress=False)
    return result.step, time.process_time() - start


@torch.no_grad()
def hidden_mse(mae: MAE, images: torch.Tensor, masked: torch.Tensor) -> float:
    """Mean squared error on hidden patches (normalised pixel space), batched."""
    from masklab.masks.generators import MaskSample, ids_from_masked

    total, count = 0.0, 0
    for start in range(0, len(images), 250):
        chunk, hidden = images[start : start + 250], masked[start : start + 250]
        out = mae(chunk, mask=MaskSample(hidden, *ids_from_masked(hidden)))
        total += float(out.loss) * int(hidden.sum())
        count += int(hidden.sum())
    return total / count


@torch.no_grad()
def features(mae: MAE, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([mae.embed(images[s : s + 500]) for s in range(0, len(images), 500)]).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-minutes", type=float, default=3.0, help="training budget per arm (CPU time)")
    parser.add_argument("--steps", type=int, default=None, help="fixed steps per arm instead of --cpu-minutes")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--eval", type=int, default=1000, help="held-out images to score (max 1000)")
    parser.add_argument("--spread-weight", type=float, default=LearnedMaskerConfig.spread_weight,
                        help="masker logit-spread penalty (keeps masks random)")  # fmt: skip
    parser.add_argument("--entropy-weight", type=float, default=LearnedMaskerConfig.entropy_weight)
    parser.add_argument("--attention", action="store_true", help="add an attention-high (AttMask) arm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="directory for the two runs (default: a temp dir)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="masklab-learned-"))

    dataset = load_images("builtin:mnist5k")
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, 0.2, 0)
    train_data = dataset.subset(train_idx).with_augment(Augment(crop_scale=(0.6, 1.0), flip=False))
    mean, std = dataset.subset(train_idx).pixel_stats()
    config = MAEConfig(image_size=(28, 28), patch_size=4, channels=1, dim=args.dim, depth=args.depth, heads=4,
                       decoder_dim=64, decoder_depth=2, decoder_heads=4, mask_ratio=0.75,
                       pixel_mean=mean, pixel_std=std)  # fmt: skip
    masker = {"spread_weight": args.spread_weight, "entropy_weight": args.entropy_weight}
    kinds = {"random": config, "learned": dataclasses.replace(config, mask_kind="learned", masker=masker)}
    if args.attention:
        kinds["attention-high"] = dataclasses.replace(config, mask_kind="attention-high")
    models, cost = {}, {}
    for name, cfg in kinds.items():
        torch.manual_seed(args.seed)  # the same initial MAE weights (the masker is built after them)
        models[name] = MAE(cfg)
        cost[name] = train(models[name], train_data, args, out / name)
        models[name].eval()
    learned = models["learned"]

    # A seeded subset (mnist5k is sorted by class: the first test indices are all zeros).
    test_idx = test_idx[torch.randperm(len(test_idx), generator=torch.Generator().manual_seed(5))[: args.eval]]
    images = dataset.images(test_idx)
    labels = dataset.labels[test_idx].numpy()
    g = torch.Generator().manual_seed(1234)
    random_masks = random_masking(len(images), config.num_patches, config.mask_ratio, generator=g).masked
    learned_masks = learned.adversary.propose(patchify(learned.normalize(images), config.patch_size), g).masked
    ink = patchify(images, config.patch_size).amax(-1) > 0.25  # (N, L) patches that hold part of the stroke

    rows = [("random masks", random_masks), ("learned masks", learned_masks)]
    if args.attention:
        with torch.no_grad():
            x = models["attention-high"].normalize(images)
            rows.append(("attention-high", models["attention-high"].sample_mask(len(images), generator=g, x=x).masked))
    budget = f"{args.steps} steps" if args.steps else f"{args.cpu_minutes:g} CPU minutes"
    spent = ", ".join(f"{name} {steps} steps ({secs:.0f} CPU s)" for name, (steps, secs) in cost.items())
    print(f"\nmnist5k, {len(images)} held-out digits; budget {budget} per arm: {spent}")
    header = "".join(f"{'MSE ' + name + '-MAE':>24}" for name in models)
    print(f"{'eval masks':<16} {'ink share of hidden':>20}{header}")
    for name, masked in rows:
        share = float((ink & masked).sum() / masked.sum())
        mses = "".join(f"{hidden_mse(m, images, masked):>24.4f}" for m in models.values())
        print(f"{name:<16} {100 * share:>19.1f}%{mses}")

    train_images = dataset.images(train_idx)
    train_labels = dataset.labels[train_idx].numpy()
    probes = [probe_features(f"MAE, {name} masks", features(m, train_images), train_labels, features(m, images),
                             labels) for name, m in models.items()]  # fmt: skip
    print()
    print(format_probe_table(probes))

    from masklab.viz.grids import save_grid

    def shown(masked: torch.Tensor) -> torch.Tensor:
        hidden = pixel_mask_from_patches(masked[:8], config.patch_size, config.grid)[:, None]
        return torch.where(hidden, torch.full_like(images[:8], 0.5), images[:8])

    grid = save_grid(out / "learned_masks.png", [list(images[:8]), list(shown(random_masks)),
                                                 list(shown(learned_masks))])  # fmt: skip
    print(f"\nruns in {out}; rows of {grid}: input, random mask, learned mask (gray = hidden)")


if __name__ == "__main__":
    main()
