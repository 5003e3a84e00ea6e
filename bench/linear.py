"""CPU fp32 GEMM libraries on this machine: torch's ``F.linear`` (MKL) vs oneDNN, at the shapes masklab's models use.

:mod:`masklab.nn.cpu_linear` sends CPU fp32 linears to oneDNN (``torch.ops.mkldnn._linear_pointwise``) because on
some CPUs MKL does not run its fastest kernels. This prints, per shape, GFLOPS of the forward GEMM and of forward +
both gradient GEMMs on each library, their ratio, and each one's largest difference from a float64
reference — so the choice can be checked on any machine (``MASKLAB_CPU_LINEAR=torch`` turns it off)::

    python bench/linear.py                 # 1 thread
    python bench/linear.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from masklab.nn.cpu_linear import Linear, cpu_linear_backend

# (rows, in, out): MAE small-28 decoder (batch 128 x 17 tokens), gpt-char (12 x 64 tokens), gpt-6x384 (4 x 256),
# ViT-T encoder (8 x 50 tokens), decoding with a KV cache at batch 8 and 1.
SHAPES = [
    (2176, 128, 384), (2176, 512, 128), (768, 128, 512), (768, 512, 128), (1024, 384, 1152), (1024, 1536, 384),
    (400, 192, 768), (8, 384, 1152), (1, 384, 1152),
]  # fmt: skip


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), fp32, median of {args.repeats}")
    print(f"{'rows x in -> out':>22} | {'fwd GFLOPS torch / oneDNN':>26} | {'fwd+bwd GFLOPS torch / oneDNN':>30} | "
          f"{'speed-up':>8} | {'max err: torch, oneDNN':>22}")  # fmt: skip
    for rows, k, n in SHAPES:
        torch.manual_seed(0)
        layer, x = Linear(k, n), torch.randn(rows, k, requires_grad=True)
        grad = torch.randn(rows, n)
        ref = F.linear(x.double(), layer.weight.double(), layer.bias.double())
        flops = 2 * rows * k * n
        res = {}
        for backend in ("torch", "onednn"):
            with cpu_linear_backend(backend):
                with torch.no_grad():
                    fwd = _median_time(lambda layer=layer, x=x: layer(x), args.repeats)
                    err = (layer(x).double() - ref).abs().max().item()

                def train(layer=layer, x=x, grad=grad) -> None:
                    layer(x).backward(grad)

                both = _median_time(train, args.repeats)
            res[backend] = (flops / fwd / 1e9, 3 * flops / both / 1e9, both, err)
        (f_t, b_t, s_t, e_t), (f_d, b_d, s_d, e_d) = res["torch"], res["onednn"]
        print(f"{rows:>8} x {k:>4} -> {n:>4} | {f_t:>11.0f} / {f_d:>12.0f} | {b_t:>13.0f} / {b_d:>14.0f} | "
              f"{s_t / s_d:>7.2f}x | {e_t:>10.1e}, {e_d:>9.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
