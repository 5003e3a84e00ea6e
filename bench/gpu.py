"""GPU training throughput and MFU: masklab vs Hugging Face, and causal FlexAttention vs dense-mask SDPA.

Three markdown tables, all bf16 autocast (fp32 weights and AdamW state, as ``fit`` trains on CUDA):

- ``mae``: MAE ViT-B/16 (masklab preset ``mae-vit-b``, 224x224x3, 75% masking) training steps, masklab
  :class:`~masklab.models.mae.MAE` vs ``transformers.ViTMAEForPreTraining`` with the same config and weights
  (``bench/mae.py``'s ``hf_model`` + masklab's converter), fed the same images and masking noise;
- ``bert``: BERT-base MLM training steps at seq 128 and 512 (packed rows, no padding), masklab ``BertForMLM``
  vs ``transformers.BertForMaskedLM``, same weights, batches and 80/10/10 corruption (``bench/mlm.py``);
- ``attention``: causal self-attention forward + backward, H = 16, Dh = 64, T = 1k ... 16k: masklab's
  FlexAttention path (:mod:`masklab.nn.attention`: cached ``BlockMask`` + compiled ``flex_attention``) vs SDPA
  with a dense boolean mask; SDPA's own ``is_causal`` kernel (what masklab dispatches for *plain* causal
  masks) is shown for reference. Batch ``B = max(1, --attn-tokens // T)`` keeps the tokens per call fixed.

A training step is forward + backward + AdamW (fused on CUDA); after ``--warmup`` untimed steps, ``--iters``
steps run back to back between two ``torch.cuda.synchronize()`` and the mean is reported. Usage::

    python bench/gpu.py                                   # everything, on the current CUDA device
    python bench/gpu.py --parts attention --lengths 1024 4096 16384
    python bench/gpu.py --parts mae bert --compile        # torch.compile each model's loss function
    python bench/gpu.py --peak-tflops 1979                # MFU against another peak (default: H100 SXM)
    python bench/gpu.py --device cpu --smoke              # tiny sizes: every code path on CPU, < 1 minute

Without a GPU (and without ``--device cpu``) it prints a note and exits with status 0.

FLOPs are *model* FLOPs, counted analytically from the config (never from a profiler), the same number for
both implementations in a row; MFU = FLOPs per step / seconds per step / ``--peak-tflops`` (default 989:
H100 SXM bf16 dense, no sparsity):

- a Linear of ``n_in x n_out`` on N tokens costs 2 N n_in n_out forward and twice that backward, so a training
  step costs ``6 * N * n_in * n_out`` (the ``6 * params * tokens`` rule, Kaplan et al. 2020); biases, norms,
  activations, softmax, embedding look-ups and the optimizer are not counted;
- attention ``QK^T`` and ``AV`` cost ``2 T^2 D`` each per layer and sequence forward (D = H * Dh), so
  ``12 * layers * T^2 * D`` per training step (no causal discount for the bidirectional models);
- MAE per image: encoder blocks (``12 D^2`` weights each at mlp_ratio 4) on ``1 + V`` tokens (V = 49 visible of
  L = 196), patch embedding on V patches, decoder embedding on ``1 + V``, decoder blocks on ``1 + L``, pixel
  prediction on L; attention over ``1 + V`` (encoder) and ``1 + L`` (decoder) tokens. HF's convolution embeds
  all L patches before masking; that extra work is not counted;
- BERT MLM per sequence: encoder blocks on all T tokens plus the MLM head (``D x D`` dense and the tied
  ``D x vocab`` projection) on the masked tokens only (15% on average). HF runs the head on every token: that
  work is not counted either, so its MFU shows what the dense head wastes;
- causal attention fwd + bwd: forward ``4 B H T^2 Dh / 2`` (only the causal half is needed), backward 2.5x the
  forward (FlashAttention-2's convention), i.e. ``3.5 * 2 B H T^2 Dh``; the dense-mask SDPA row is charged the
  same useful FLOPs although it computes the full square.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))  # bench/mae.py and bench/mlm.py build the HF twins

H100_SXM_BF16_TFLOPS = 989.0


# ------------------------------------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], *, warmup: int, iters: int, device: torch.device) -> float:
    """Mean wall seconds of ``fn()`` over ``iters`` back-to-back calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def train_step(model: torch.nn.Module, loss_fn: Callable, batches: list, args, device: torch.device) -> Callable:
    """One AdamW step per call on the next batch (cycled); bf16 autocast around ``loss_fn(model, batch)`` only."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")

    def forward(batch):
        return loss_fn(model, batch)

    fn = torch.compile(forward) if args.compile else forward
    stream = itertools.cycle(batches)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = fn(next(stream))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def timed_rows(runs: dict[str, Callable], *, flops: float, items: int, reference: str, args, device) -> list[list[str]]:
    """Time every run; ``[name, step ms, items/s, TFLOP/s, MFU, speed vs reference]`` each.

    ``flops``: model FLOPs of one step; ``items``: images or tokens per step.
    """
    secs = {name: seconds_per_call(step, warmup=args.warmup, iters=args.iters, device=device)
            for name, step in runs.items()}  # fmt: skip
    rows = []
    for name, s in secs.items():
        tflops = flops / s / 1e12
        rows.append([name, f"{s * 1e3:.1f}", f"{items / s:.0f}", f"{tflops:.3g}",
                     f"{100 * tflops / args.peak_tflops:.1f}%", f"{secs[reference] / s:.2f}x"])  # fmt: skip
    return rows


def free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# ------------------------------------------------------------------------------------------------- FLOPs
def mae_train_flops(cfg) -> float:
    """Training FLOPs per image of an MAE config (see the module docstring)."""
    L, P = cfg.num_patches, cfg.patch_dim
    V = int(L * (1 - cfg.mask_ratio))  # MAE's len_keep
    enc, dec = 1 + V, 1 + L  # + CLS
    D, Dd = cfg.dim, cfg.decoder_dim
    block, dblock = 4 * D * D + 2 * D * cfg.mlp_hidden, 4 * Dd * Dd + 2 * Dd * cfg.decoder_mlp_hidden
    dense = V * P * D + enc * cfg.depth * block + enc * D * Dd + dec * cfg.decoder_depth * dblock + L * Dd * P
    attention = cfg.depth * enc**2 * D + cfg.decoder_depth * dec**2 * Dd
    return 6.0 * dense + 12.0 * attention


def bert_mlm_train_flops(bert, seq_len: int, masked_per_seq: float) -> float:
    """Training FLOPs per sequence of BERT MLM with a sparse head (see the module docstring)."""
    D, T = bert.dim, seq_len
    dense = T * bert.depth * (4 * D * D + 2 * D * bert.intermediate) + masked_per_seq * (D * D + D * bert.vocab_size)
    return 6.0 * dense + 12.0 * bert.depth * T * T * D


def causal_attention_flops(batch: int, heads: int, T: int, head_dim: int) -> float:
    """Forward + backward FLOPs of causal attention (the causal half; backward = 2.5 x forward)."""
    return 3.5 * 2.0 * batch * heads * T * T * head_dim


# ------------------------------------------------------------------------------------------------ MAE
def mae_loss(model, batch):
    images, noise = batch
    return model(images, noise=noise).loss


def hf_mae_loss(model, batch):
    images, noise = batch
    return model(pixel_values=images, noise=noise).loss


def bench_mae(args, device: torch.device) -> None:
    from mae import hf_model  # bench/mae.py: ViTMAEForPreTraining with masklab's config, fixed sin-cos tables

    from masklab.interop.hf.mae import mae_from_hf
    from masklab.models.mae import MAE

    cfg = MAE.from_preset(args.mae_preset, channels=3).config
    torch.manual_seed(0)
    hf = hf_model(cfg).to(device).train()
    ours = mae_from_hf(hf).to(device).train()  # the same weights
    g = torch.Generator().manual_seed(0)
    B = args.mae_batch
    images = [torch.rand(B, 3, *cfg.image_size, generator=g).to(device) for _ in range(2)]
    batches = [(x, torch.rand(B, cfg.num_patches, generator=g).to(device)) for x in images]  # same masks for both
    hf_name = "HF ViTMAEForPreTraining (sdpa)"
    runs = {
        "masklab MAE": train_step(ours, mae_loss, batches, args, device),
        hf_name: train_step(hf, hf_mae_loss, batches, args, device),
    }
    flops = mae_train_flops(cfg) * B
    n_params = sum(p.numel() for p in ours.parameters())
    print(f"\n## MAE {args.mae_preset}: {cfg.image_size[0]}x{cfg.image_size[1]}x3, patch {cfg.patch_size}, "
          f"enc {cfg.dim}x{cfg.depth}, dec {cfg.decoder_dim}x{cfg.decoder_depth}, mask {cfg.mask_ratio}, "
          f"batch {B}, {n_params / 1e6:.3g}M params, {flops / B / 1e9:.3g} GFLOP per image per step\n")  # fmt: skip
    print(row(["model", "step ms", "images/s", "TFLOP/s", "MFU", "vs HF"]))
    print(row(["---"] * 6))
    for cells in timed_rows(runs, flops=flops, items=B, reference=hf_name, args=args, device=device):
        print(row(cells))


# ------------------------------------------------------------------------------------------------ BERT
def bert_loss(model, batch):
    logits = model.predict_masked(model(batch["inputs"]), batch["masked"])  # (M, V): the sparse head
    return F.cross_entropy(logits, batch["ids"][batch["masked"]])


def hf_bert_loss(model, batch):
    return model(input_ids=batch["inputs"], labels=batch["labels"]).loss  # labels -100 = not predicted


def bench_bert(args, device: torch.device) -> None:
    print(f"\n## BERT MLM {args.bert_preset}, vocab {args.vocab}, {args.bert_tokens} tokens per step "
          f"(packed rows, no padding)\n")  # fmt: skip
    print(row(["model", "seq", "batch", "step ms", "tokens/s", "TFLOP/s", "MFU", "vs HF"]))
    print(row(["---"] * 8))
    for seq_len in args.seq_lens:
        for cells in bench_bert_seq(args, device, seq_len):
            print(row(cells))
        free(device)


def bench_bert_seq(args, device: torch.device, seq_len: int) -> list[list[str]]:
    from mlm import build_models, make_batches  # bench/mlm.py: same weights, masks drawn once for both

    ours, hf = build_models(args.bert_preset, args.vocab, seq_len, seed=0)
    B = max(1, args.bert_tokens // seq_len)
    batches = [{k: v.to(device) for k, v in b.items()} for b in make_batches(2, B, seq_len, args.vocab, ours, 0)]
    ours, hf = ours.to(device).train(), hf.to(device).train()
    hf_name = f"HF BertForMaskedLM ({hf.config._attn_implementation})"
    runs = {
        "masklab BertForMLM": train_step(ours, bert_loss, batches, args, device),
        hf_name: train_step(hf, hf_bert_loss, batches, args, device),
    }
    masked = sum(float(b["masked"].sum()) for b in batches) / (len(batches) * B)
    flops = bert_mlm_train_flops(ours.config.bert, seq_len, masked) * B
    rows = timed_rows(runs, flops=flops, items=B * seq_len, reference=hf_name, args=args, device=device)
    return [[name, str(seq_len), str(B), *rest] for name, *rest in rows]


# ------------------------------------------------------------------------------------------- attention
def bench_attention(args, device: torch.device) -> None:
    import torch._dynamo

    # One compiled Flex kernel per length: lift dynamo's default limit of 8 recompiles.
    torch._dynamo.config.recompile_limit = 64
    print(f"\n## causal attention fwd+bwd, bf16, H={args.heads}, Dh={args.head_dim}, "
          f"{args.attn_tokens} tokens per call\n")  # fmt: skip
    print(row(["T", "B", "Flex ms", "SDPA bool ms", "SDPA is_causal ms", "Flex TFLOP/s", "Flex MFU", "bool / Flex"]))
    print(row(["---"] * 8))
    for T in args.lengths:
        print(row(attention_cells(args, device, T)))
        free(device)


def attention_cells(args, device: torch.device, T: int) -> list[str]:
    """One table row: every path's fwd + bwd time at length ``T`` ("OOM" / "n/a (why)" where it cannot run)."""
    from masklab import masks as M
    from masklab.masks.convert import to_sdpa
    from masklab.nn.attention import BLOCK_MASKS, flex_attention, sdpa_attention

    B, H, Dh = max(1, args.attn_tokens // T), args.heads, args.head_dim
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(B, H, T, Dh, generator=g).to(device, torch.bfloat16).requires_grad_() for _ in range(3))
    grad = torch.randn(B, H, T, Dh, generator=g).to(device, torch.bfloat16)
    rule = M.causal()
    allowed = to_sdpa(rule.dense(T, device=device))  # (1, 1, T, T) in SDPA's polarity, built once, outside timing
    paths = {
        # masklab's Flex path: the cached BlockMask for the rule, then the (on CUDA compiled) flex_attention.
        "flex": lambda: flex_attention(q, k, v, BLOCK_MASKS.get(rule, T, T, device)),
        "sdpa_bool": lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=allowed),
        "sdpa_causal": lambda: sdpa_attention(q, k, v, is_causal=True),
    }
    secs: dict[str, float] = {}
    shown: dict[str, str] = {}
    for name, attend in paths.items():

        def call(attend=attend) -> None:
            attend().backward(grad)
            q.grad = k.grad = v.grad = None

        try:
            secs[name] = seconds_per_call(call, warmup=args.warmup, iters=args.iters, device=device)
            shown[name] = f"{secs[name] * 1e3:.2f}"
        except torch.OutOfMemoryError:
            shown[name] = "OOM"
        except (NotImplementedError, RuntimeError) as err:  # e.g. torch has no FlexAttention backward on CPU
            shown[name] = f"n/a ({str(err).split('. ')[0][:60]})"
        q.grad = k.grad = v.grad = None
        free(device)
    flex = causal_attention_flops(B, H, T, Dh) / secs["flex"] / 1e12 if "flex" in secs else None
    ratio = f"{secs['sdpa_bool'] / secs['flex']:.2f}x" if {"flex", "sdpa_bool"} <= secs.keys() else "n/a"
    return [str(T), str(B), shown["flex"], shown["sdpa_bool"], shown["sdpa_causal"],
            "n/a" if flex is None else f"{flex:.3g}",
            "n/a" if flex is None else f"{100 * flex / args.peak_tflops:.1f}%", ratio]  # fmt: skip


# ------------------------------------------------------------------------------------------------- main
# --smoke: the small presets and sizes (anything given on the command line wins); numbers mean nothing.
SMOKE = dict(mae_preset="mae-tiny", mae_batch=4, bert_preset="bert-tiny", vocab=512, seq_lens=[16, 32],
             bert_tokens=64, lengths=[64, 128], heads=2, head_dim=16, attn_tokens=128, warmup=1, iters=1)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--parts", nargs="+", choices=["mae", "bert", "attention"], default=["mae", "bert", "attention"]
    )
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (cpu only makes sense with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 warm-up + 1 timed step: checks the code")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model's loss function")
    parser.add_argument("--peak-tflops", type=float, default=H100_SXM_BF16_TFLOPS, help="peak bf16 TFLOP/s for MFU")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--iters", type=int, default=20, help="timed steps")
    parser.add_argument("--mae-preset", default="mae-vit-b")
    parser.add_argument("--mae-batch", type=int, default=64)
    parser.add_argument("--bert-preset", default="bert-base")
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--bert-tokens", type=int, default=16384, help="tokens per step: batch = this // seq")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--attn-tokens", type=int, default=16384, help="tokens per attention call: B = this // T")
    args = parser.parse_args(argv)
    if args.smoke:
        given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv if argv is not None else sys.argv[1:])}
        for name, value in SMOKE.items():
            if name not in given:
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA GPU here, nothing to measure (a CPU dry run: --device cpu --smoke)")
        return 0
    if device.type != "cuda" and not args.smoke:
        print("bench/gpu.py: full-size runs need a GPU; on CPU use --smoke (checks the code, times nothing useful)")
        return 0
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers outside autocast, as in training
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU"
    import transformers

    print(f"# {name}, torch {torch.__version__}, transformers {transformers.__version__}, bf16 autocast, "
          f"compile={args.compile}, warm-up {args.warmup}, timed {args.iters}, MFU vs {args.peak_tflops:g} "
          f"TFLOP/s{' (smoke sizes: not a measurement)' if args.smoke else ''}")  # fmt: skip
    parts = {"mae": bench_mae, "bert": bench_bert, "attention": bench_attention}
    for part in args.parts:
        parts[part](args, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
