"""Masked attention throughput: reference vs SDPA(bool mask) vs SDPA(is_causal) vs FlexAttention vs bmm.

Prints a markdown table of milliseconds per forward(+backward) call and the speed-up over the reference path,
for a causal mask and for a key-padding mask (half the rows padded to 60%) at T = 128 ... 2048.
All paths run side by side in one process; compare ratios, not absolute times.

    python bench/attention.py                  # CPU, forward + backward
    python bench/attention.py --device cuda --dtype bf16 --lengths 1024 2048 4096 8192
    python bench/attention.py --lengths 8 16 32 64 --batch 256 --heads 2 --head-dim 16 --flex off  # table rows

``bmm`` is :func:`masklab.nn.attention.bmm_attention` (two batched GEMMs around a softmax), the CPU kernel a
model trains with where its own step measured it faster (``MASKLAB_CPU_ATTENTION``).
"""

from __future__ import annotations

import argparse
import time

import torch

from masklab import masks as M
from masklab.core.probe import cpu_model_name
from masklab.nn.attention import bmm_attention, reference_attention, sdpa_attention


def timeit(fn, *, warmup: int, min_time: float, device: str) -> float:
    """Median milliseconds per call of ``fn``."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def make_flex(compile_flex: bool):
    try:
        from torch.nn.attention.flex_attention import flex_attention
    except ImportError:
        return None
    if not compile_flex:
        return flex_attention
    try:
        import torch._dynamo

        # One compiled kernel per (mask, length) cell: lift dynamo's default limit of 8 recompiles.
        torch._dynamo.config.recompile_limit = 64
        return torch.compile(flex_attention, dynamic=False)
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--forward-only", action="store_true")
    parser.add_argument("--flex", choices=["compile", "eager", "off"], default="compile")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds of timing per cell")
    args = parser.parse_args()

    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    flex = None if args.flex == "off" else make_flex(args.flex == "compile")
    mode = "fwd" if args.forward_only else "fwd+bwd"
    print(
        f"device={args.device} dtype={args.dtype} B={args.batch} H={args.heads} Dh={args.head_dim} {mode} "
        f"torch={torch.__version__} threads={torch.get_num_threads()} flex={args.flex if flex else 'n/a'} "
        f"CPU: {cpu_model_name()}"
    )
    print()
    print("| mask | T | reference ms | SDPA bool ms | SDPA is_causal ms | Flex ms | bmm ms | SDPA bool / ref | "
          "bmm / SDPA bool | best / ref |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    flex_state = {"failed": False}
    for kind in ("causal", "padding"):
        for T in args.lengths:
            ms = bench_cell(kind, T, args, dtype, flex, flex_state, g)
            best = min(ms.values())
            names = ("reference", "sdpa_bool", "sdpa_causal", "flex", "bmm")
            cols = [f"{ms[n]:.2f}" if n in ms else "n/a" for n in names]
            print(
                f"| {kind} | {T} | {' | '.join(cols)} | {ms['reference'] / ms['sdpa_bool']:.2f}x | "
                f"{ms['sdpa_bool'] / ms['bmm']:.2f}x | {ms['reference'] / best:.2f}x |",
                flush=True,
            )


def bench_cell(kind, T, args, dtype, flex, flex_state, g) -> dict[str, float]:
    """Milliseconds per call of every available path for one mask kind and length."""
    shape = (args.batch, args.heads, T, args.head_dim)
    q, k, v = (
        torch.randn(shape, generator=g).to(args.device, dtype).requires_grad_(not args.forward_only) for _ in range(3)
    )
    if kind == "causal":
        rule = M.causal()
    else:
        lengths = torch.tensor([T if b % 2 == 0 else int(0.6 * T) for b in range(args.batch)])
        rule = M.key_padding(M.padding_from_lengths(lengths, T).to(args.device))
    blocked = rule.dense(T, device=args.device)  # (B|1, 1, T, T)

    def run(fn):
        def step():
            out = fn()
            if not args.forward_only:
                out.sum().backward()
                q.grad = k.grad = v.grad = None

        return step

    cells = {
        "reference": run(lambda: reference_attention(q, k, v, blocked)[0]),
        "sdpa_bool": run(lambda: sdpa_attention(q, k, v, blocked)),
        "bmm": run(lambda: bmm_attention(q, k, v, blocked)),
    }
    if kind == "causal":
        cells["sdpa_causal"] = run(lambda: sdpa_attention(q, k, v, is_causal=True))
    if flex is not None and not flex_state["failed"]:
        try:
            block_mask = rule.block_mask(T, device=args.device)
            cells["flex"] = run(lambda: flex(q, k, v, block_mask=block_mask))
            cells["flex"]()  # compile outside the timing
        except Exception as err:
            # e.g. torch 2.13 has no FlexAttention backward on CPU: say so once, keep going.
            print(f"<!-- flex n/a ({kind}, T={T}): {type(err).__name__}: {str(err)[:100]} -->")
            cells.pop("flex", None)
            flex_state["failed"] = True
    return {name: timeit(fn, warmup=2, min_time=args.min_time, device=args.device) for name, fn in cells.items()}


if __name__ == "__main__":
    main()
