"""MAE training-step throughput: masklab vs Hugging Face ViTMAE, and visible-only vs encode-all-tokens.

One training step = forward + backward + AdamW update on a fixed batch, CPU fp32. For each preset:

- ``masklab MAE``: :class:`masklab.models.mae.MAE` (fused QKV, SDPA, patch embedding of visible patches only);
- ``HF ViTMAE``: ``transformers.ViTMAEForPreTraining`` with the same config (``attn_implementation="sdpa"``)
  and the *same weights* (masklab's copy is made with the converter), fed the same images and masking noise;
- ``masklab SimMIM-style``: the same network but the encoder runs on all L tokens (hidden ones replaced by a
  mask token) — what MAE's "encode only visible patches" saves (He et al. 2021, Sec. 3);
- ``masklab default (auto: ...)``: masklab's model with the GEMM library and precision ``auto`` picks on this
  machine (the probes ``fit`` runs, :mod:`masklab.train.cpu_probe`; their reasons are printed), then each forced
  choice (``onednn``/``torch`` fp32, and bf16 autocast on CPUs with native bf16).

Steps of the models are interleaved round by round (each round starting with the next arm) so a busy shared
machine slows all of them alike; the median step time is reported. Usage::

    python bench/mae.py                                  # mae-small-28 (batch 128) and mae-vit-t (batch 8)
    python bench/mae.py --presets mae-vit-b --batch-size 4 --steps 6 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from masklab.models.mae import MAE

sys.path.insert(0, str(Path(__file__).parent))
from cpu_arms import default_and_forced_arms, rotated, run_arm

HF = "HF ViTMAE (sdpa)"
SIMMIM = "masklab SimMIM-style (all tokens, default)"
DEFAULT_BATCH = {"mae-tiny": 64, "mae-small-28": 128, "mae-vit-t": 8, "mae-vit-b": 4}


def hf_model(cfg):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    if cfg.image_size[0] != cfg.image_size[1]:
        raise ValueError("HF ViTMAE needs square images")
    hf_cfg = ViTMAEConfig(
        image_size=cfg.image_size[0],
        patch_size=cfg.patch_size,
        num_channels=cfg.channels,
        hidden_size=cfg.dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.mlp_hidden,
        decoder_hidden_size=cfg.decoder_dim,
        decoder_num_hidden_layers=cfg.decoder_depth,
        decoder_num_attention_heads=cfg.decoder_heads,
        decoder_intermediate_size=cfg.decoder_mlp_hidden,
        layer_norm_eps=cfg.norm_eps,
        mask_ratio=cfg.mask_ratio,
        attn_implementation="sdpa",
    )
    model = ViTMAEForPreTraining(hf_cfg)
    # transformers 5.x leaves the fixed sin-cos tables at zero on random init; run its own table code.
    model.vit.embeddings.patch_embeddings.projection._is_hf_initialized = False
    model.vit.embeddings.initialize_weights()
    model.decoder.initialize_weights(cfg.num_patches)
    return model


def step_fn(model, optimizer, images, noise, hf: bool):
    def step() -> float:
        t0 = time.perf_counter()
        loss = model(pixel_values=images, noise=noise).loss if hf else model(images, noise=noise).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    return step


def bench_preset(name: str, batch: int, steps: int, warmup: int) -> tuple[list[tuple[str, float]], list[str]]:
    from masklab.interop.hf.mae import mae_from_hf

    cfg = MAE.from_preset(name, channels=3).config
    torch.manual_seed(0)
    hf = hf_model(cfg).train()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, *cfg.image_size, generator=g)
    noise = torch.rand(batch, cfg.num_patches, generator=g)
    probe = mae_from_hf(hf).train()

    def probe_step(dtype) -> None:  # what fit's probes time: forward + backward of one batch
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = probe(images, noise=noise).loss
        loss.backward()
        probe.zero_grad(set_to_none=True)

    arms, notes = default_and_forced_arms(probe, probe_step, f"bench/mae {name} batch={batch}")
    runners = {HF: step_fn(hf, torch.optim.AdamW(hf.parameters(), lr=1e-4), images, noise, True)}
    for arm in arms:
        model = mae_from_hf(hf).train()
        step = step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-4), images, noise, False)
        runners[arm[0]] = lambda model=model, arm=arm, step=step: run_arm(model, arm, step)
    simmim = MAE.from_preset(name, channels=3, variant="simmim").train()
    simmim_step = step_fn(simmim, torch.optim.AdamW(simmim.parameters(), lr=1e-4), images, noise, False)
    runners[SIMMIM] = lambda: run_arm(simmim, arms[0], simmim_step)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(warmup + steps):
        for key in rotated(list(runners), i):
            t = runners[key]()
            if i >= warmup:
                times[key].append(t)
    return [(key, batch / statistics.median(ts)) for key, ts in times.items()], notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["mae-small-28", "mae-vit-t"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: per preset")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), "
          f"median of {args.steps} steps after {args.warmup} warm-up, forward + backward + AdamW")  # fmt: skip
    for name in args.presets:
        batch = args.batch_size or DEFAULT_BATCH.get(name, 8)
        cfg = MAE.from_preset(name, channels=3).config
        rows, notes = bench_preset(name, batch, args.steps, args.warmup)
        print(
            f"\n{name}: {cfg.image_size[0]}x{cfg.image_size[1]}x3, patch {cfg.patch_size} (L={cfg.num_patches}), "
            f"enc {cfg.dim}x{cfg.depth}, dec {cfg.decoder_dim}x{cfg.decoder_depth}, mask 0.75, batch {batch}"
        )
        for note in notes:
            print(f"  {note}")
        base = dict(rows)[HF]
        print(f"  {'arm':<66} {'samples/s':>10} {'vs HF':>7}")
        for key, rate in rows:
            print(f"  {key:<66} {rate:>10.1f} {rate / base:>6.2f}x")
        default = next(rate for key, rate in rows if key.startswith("masklab default"))
        print(f"  visible-only vs encode-all speed-up: {default / dict(rows)[SIMMIM]:.2f}x")


if __name__ == "__main__":
    main()
