"""Two gloo ranks whose CPU probes choose differently (rank 0 SDPA attention, rank 1 bmm, forced here): every
rank must train with rank 0's choice, the one the checkpoint records and a resume reapplies on every rank.

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/rank_kernels_script.py OUT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.modules["matplotlib"] = None  # no loss.png

from ddp_script import build  # noqa: E402

from masklab.nn.attention import MaskedSelfAttention, use_cpu_attention  # noqa: E402
from masklab.train import TrainConfig, cpu_probe, fit  # noqa: E402
from masklab.train.distributed import exit_worker  # noqa: E402


def main() -> None:
    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, data, model_config = build("mlm")
    probe = cpu_probe.choose_cpu_speedups

    def probe_differently(model, batch, precision, **kwargs):  # as two machines' timings may disagree
        amp_dtype, notes = probe(model, batch, precision, **kwargs)
        use_cpu_attention(model, "sdpa" if rank == 0 else "bmm")
        return amp_dtype, notes

    cpu_probe.choose_cpu_speedups = probe_differently
    seen: set[str] = set()
    attention = next(m for m in model.modules() if isinstance(m, MaskedSelfAttention))

    def record(module, args) -> None:  # the probes time copies of the model, which copy this hook too
        if module is attention:
            seen.add(module.cpu_kernel)

    attention.register_forward_pre_hook(record)
    cfg = TrainConfig(steps=2, batch_size=16, lr=1e-2, log_every=1, ckpt_every=2, device="cpu")
    fit(model, data, cfg, out, model_config=model_config, progress=False)
    print(f"rank {rank} trained with attention {sorted(seen)}")


if __name__ == "__main__":
    main()
    exit_worker(0)
