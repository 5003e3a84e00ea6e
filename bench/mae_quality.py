"""MAE quality on mnist5k after a fixed CPU budget: linear probe / k-NN and inpainting PSNR vs classical methods.

1. Pretrain ``--preset`` on the training split of ``--data`` for ``--minutes`` or ``--steps`` (or reuse ``--run``).
2. Probe: logistic regression and 20-NN on frozen features of the MAE encoder, of a randomly initialised
   encoder of the same shape, and of raw pixels; fitted on the training split, scored on the held-out split.
3. Inpainting: every held-out image gets a seeded random 75% patch mask (the run's patch size); the hidden
   pixels are filled by the MAE (visible pixels pasted back), OpenCV Telea and Navier-Stokes, scikit-image
   biharmonic, and the visible-pixel mean. PSNR is over all hidden pixels of all held-out images pooled
   (per-image PSNR is infinite whenever a method gets an all-black hidden region exactly right).

Usage::

    python bench/mae_quality.py --minutes 3 --out runs/quality-mae      # train, then measure
    python bench/mae_quality.py --steps 1500 --out runs/quality-1500    # same compute on any machine
    python bench/mae_quality.py --run runs/demo-mae                      # measure an existing run
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from masklab.cli import main as cli


def inpainting_table(run: str, seed: int, ratio: float, limit: int | None) -> list[tuple[str, float, float]]:
    from masklab.eval.inpainting import classical_inpaint
    from masklab.masks.generators import random_masking
    from masklab.recipes.mae import load_mae_run as load_run_model
    from masklab.recipes.mae import load_split
    from masklab.tokenizers.patches import pixel_mask_from_patches

    model = load_run_model(run, "cpu")
    cfg = model.config
    dataset, _, test_idx = load_split(None, run, model)
    test_idx = test_idx if limit is None else test_idx[:limit]
    images = dataset.images(test_idx)  # (N, C, H, W)
    mask = random_masking(len(images), cfg.num_patches, ratio, generator=torch.Generator().manual_seed(seed))
    hidden = pixel_mask_from_patches(mask.masked, cfg.patch_size, cfg.grid)  # (N, H, W)
    t0 = time.perf_counter()
    with torch.inference_mode():
        recon = torch.cat([model.reconstruct(images[i : i + 256], mask.masked[i : i + 256])
                           for i in range(0, len(images), 256)])  # fmt: skip
    filled = {"MAE": torch.where(hidden[:, None], recon, images).numpy()}
    seconds = {"MAE": time.perf_counter() - t0}
    hwc = images.permute(0, 2, 3, 1).numpy().astype(np.float64)  # (N, H, W, C)
    for method in ("telea", "ns", "biharmonic", "mean"):
        t0 = time.perf_counter()
        out = np.stack([classical_inpaint(hwc[i], hidden[i].numpy(), method) for i in range(len(hwc))])
        filled[f"{method}"] = out.transpose(0, 3, 1, 2)
        seconds[method] = time.perf_counter() - t0
    target = images.numpy().astype(np.float64)
    sel = np.broadcast_to(hidden[:, None].numpy(), target.shape)
    rows = []
    for name, out in filled.items():
        err = float(((out.astype(np.float64) - target) ** 2)[sel].mean())
        rows.append((name, 10 * math.log10(1.0 / err), seconds[name]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=None, help="measure this existing run instead of training one")
    parser.add_argument("--data", default="builtin:mnist5k")
    parser.add_argument("--preset", default="mae-small-28")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=3.0, help="wall-clock pretraining budget (default 3)")
    budget.add_argument("--steps", type=int, default=None, help="a fixed number of steps instead (machine-independent)")
    parser.add_argument("--out", default="runs/quality-mae")
    parser.add_argument("--mask-ratio", type=float, default=0.75, help="inpainting mask ratio (patches)")
    parser.add_argument("--max-test", type=int, default=None, help="inpaint only the first N held-out images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run = args.run
    if run is None:
        run = args.out
        if Path(run, "checkpoint.safetensors").exists():
            raise SystemExit(f"{run} already holds a run: pass --run {run} to measure it, or another --out")
        t0 = time.perf_counter()
        budget = ["--steps", str(args.steps)] if args.steps is not None else ["--minutes", str(args.minutes)]
        code = cli(["pretrain", "mae", "--data", args.data, "--preset", args.preset, *budget,
                    "--seed", str(args.seed), "--out", run])  # fmt: skip
        if code:
            raise SystemExit(code)
        print(f"pretraining took {time.perf_counter() - t0:.0f} s wall-clock")
    print("\n== linear probe / k-NN on held-out images ==")
    cli(["probe", run, "--seed", str(args.seed)])
    print(f"\n== inpainting at {args.mask_ratio:.0%} random patch masking, held-out images ==")
    rows = inpainting_table(run, args.seed, args.mask_ratio, args.max_test)
    best_classical = max(p for name, p, _ in rows if name in ("telea", "ns", "biharmonic"))
    print(f"{'method':<12} {'PSNR (dB)':>10} {'seconds':>8}")
    for name, value, seconds in rows:
        print(f"{name:<12} {value:>10.2f} {seconds:>8.1f}")
    mae = dict((n, p) for n, p, _ in rows)["MAE"]
    print(f"MAE - best classical = {mae - best_classical:+.2f} dB (goal: >= +3 dB)")


if __name__ == "__main__":
    main()
