"""Data-parallel training on PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``fit`` calls :func:`setup`; under ``torchrun --nproc-per-node N`` (``WORLD_SIZE > 1`` in the environment) it
joins the process group (NCCL on GPU, gloo on CPU) and every rank trains on its slice of each global batch.
Outside torchrun nothing changes. Multi-node is plain torchrun rendezvous, e.g. on each node::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m masklab pretrain mae --data builtin:mnist5k --out runs/mae

Why the results do not depend on the world size: every rank draws the same *global* batch indices from the
same sampler, and each micro-batch's randomness (augmentation, masking noise, dropout) is seeded from
``(seed, step, micro-batch index)``. A run on W ranks with ``grad_accum = A`` therefore sees exactly the
micro-batches of a single process with ``grad_accum = W * A``, and its checkpoint (written by rank 0 only)
resumes on any number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world`` processes; ``owns_group`` if we created the group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes (if any). ``device`` picks the backend (cuda -> NCCL)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def mean_across_ranks(values: dict[str, torch.Tensor], info: DistInfo) -> dict[str, torch.Tensor]:
    """Average a dict of scalar tensors over ranks (for logging: every rank saw a different slice)."""
    if not info.enabled or not values:
        return values
    names = sorted(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    stacked = torch.stack([torch.as_tensor(values[n], dtype=torch.float32, device=device).reshape(()) for n in names])
    dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
    return dict(zip(names, (stacked / info.world).unbind(0), strict=True))


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is True on any rank (e.g. one rank ran out of its time budget)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class LossModule(nn.Module):
    """Routes ``training_loss`` through ``forward`` so DDP's gradient hooks are armed on every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch, generator):  # -> LossOutput
        return self.model.training_loss(batch, generator)


def wrap(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """The module the loop calls: ``LossModule(model)``, inside DDP when distributed."""
    module = LossModule(model)
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)
