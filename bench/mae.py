"""MAE training-step throughput: masklab vs Hugging Face ViTMAE, and visible-only vs encode-all-tokens.

One training step = forward + backward + AdamW update on a fixed batch, CPU fp32. For each preset:

- ``masklab MAE``: :class:`masklab.models.mae.MAE` (fused QKV, SDPA, patch embedding of visible patches only);
- ``HF ViTMAE``: ``transformers.ViTMAEForPreTraining`` with the same config (``attn_implementation="sdpa"``)
  and the *same weights* (masklab's copy is made with the converter), fed the same images and masking noise;
- ``masklab SimMIM-style``: the same network but the encoder runs on all L tokens (hidden ones replaced by a
  mask token) — what MAE's "encode only visible patches" saves (He et al. 2021, Sec. 3);
- ``masklab MAE, torch GEMM``: masklab's model with ``MASKLAB_CPU_LINEAR=torch``, i.e. its linears on the same
  ``F.linear`` (MKL) as HF instead of oneDNN (:mod:`masklab.nn.cpu_linear`) — so the table shows how much of the
  speed-up is the GEMM library and how much the model code.

Steps of the models are interleaved round by round so a busy shared machine slows all of them alike; the
median step time is reported. Usage::

    python bench/mae.py                                  # mae-small-28 (batch 128) and mae-vit-t (batch 8)
    python bench/mae.py --presets mae-vit-b --batch-size 4 --steps 6 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from masklab.models.mae import MAE
from masklab.nn.cpu_linear import cpu_linear_backend, get_cpu_linear_backend

TORCH_GEMM = "masklab MAE, torch GEMM (MKL)"
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
        intermediate_size=int(cfg.dim * cfg.mlp_ratio),
        decoder_hidden_size=cfg.decoder_dim,
        decoder_num_hidden_layers=cfg.decoder_depth,
        decoder_num_attention_heads=cfg.decoder_heads,
        decoder_intermediate_size=int(cfg.decoder_dim * cfg.mlp_ratio),
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


def step_fn(model, optimizer, images, noise, hf: bool, gemm: str | None = None):
    def step() -> float:
        with cpu_linear_backend(gemm or get_cpu_linear_backend()):
            t0 = time.perf_counter()
            loss = model(pixel_values=images, noise=noise).loss if hf else model(images, noise=noise).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - t0

    return step


def bench_preset(name: str, batch: int, steps: int, warmup: int) -> list[tuple[str, float]]:
    from masklab.interop.hf.mae import mae_from_hf

    cfg = MAE.from_preset(name, channels=3).config
    torch.manual_seed(0)
    hf = hf_model(cfg).train()
    ours = mae_from_hf(hf).train()
    simmim = MAE.from_preset(name, channels=3, variant="simmim").train()
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, *cfg.image_size, generator=g)
    noise = torch.rand(batch, cfg.num_patches, generator=g)
    ours_mkl = mae_from_hf(hf).train()
    models = {"masklab MAE (visible only)": ours, "HF ViTMAE (sdpa)": hf, "masklab SimMIM-style (all tokens)": simmim}
    runners = {
        key: step_fn(m, torch.optim.AdamW(m.parameters(), lr=1e-4), images, noise, m is hf) for key, m in models.items()
    }
    mkl_opt = torch.optim.AdamW(ours_mkl.parameters(), lr=1e-4)
    runners[TORCH_GEMM] = step_fn(ours_mkl, mkl_opt, images, noise, False, gemm="torch")
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(warmup + steps):
        for key, run in runners.items():
            t = run()
            if i >= warmup:
                times[key].append(t)
    return [(key, batch / statistics.median(ts)) for key, ts in times.items()]


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

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {args.threads} thread(s), CPU fp32, "
          f"median of {args.steps} steps after {args.warmup} warm-up, forward + backward + AdamW; "
          f"masklab CPU linears: {get_cpu_linear_backend()}")  # fmt: skip
    for name in args.presets:
        batch = args.batch_size or DEFAULT_BATCH.get(name, 8)
        cfg = MAE.from_preset(name, channels=3).config
        rows = bench_preset(name, batch, args.steps, args.warmup)
        print(
            f"\n{name}: {cfg.image_size[0]}x{cfg.image_size[1]}x3, patch {cfg.patch_size} (L={cfg.num_patches}), "
            f"enc {cfg.dim}x{cfg.depth}, dec {cfg.decoder_dim}x{cfg.decoder_depth}, mask 0.75, batch {batch}"
        )
        base = dict(rows)["HF ViTMAE (sdpa)"]
        print(f"  {'model':<36} {'samples/s':>10} {'vs HF':>7}")
        for key, rate in rows:
            print(f"  {key:<36} {rate:>10.1f} {rate / base:>6.2f}x")
        ours, simmim = dict(rows)["masklab MAE (visible only)"], dict(rows)["masklab SimMIM-style (all tokens)"]
        print(f"  visible-only vs encode-all speed-up: {ours / simmim:.2f}x")
        print(f"  masklab's linears on oneDNN vs on torch's GEMM: {ours / dict(rows)[TORCH_GEMM]:.2f}x")


if __name__ == "__main__":
    main()
