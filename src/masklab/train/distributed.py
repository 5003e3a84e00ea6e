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

FSDP (``TrainConfig(fsdp=True)``, ``--fsdp``): instead of DDP, :func:`wrap` shards the model with FSDP2
(``torch.distributed.fsdp.fully_shard``): every :class:`~masklab.nn.blocks.Block` of every
:class:`~masklab.nn.blocks.Encoder` is its own unit (its weights are all-gathered just before it runs and freed
after), then the root (:class:`LossModule`) takes the remaining parameters (embeddings, heads, tokens). Each
rank keeps ``1 / world`` of the weights, gradients and AdamW state. The step is the same computation as DDP's
(gradients are averaged over ranks by reduce-scatter instead of all-reduce), so the losses match a single
process within float rounding. Checkpoints stay one full, unsharded file in the single-process layout:
:func:`full_state` gathers the weights and AdamW state to rank 0 on CPU (``get_model_state_dict`` /
``get_optimizer_state_dict`` with ``full_state_dict=True, cpu_offload=True``) and :func:`state_loaders` shards
a full checkpoint back (every rank reads the whole file into CPU memory and cuts its own shard). The file does
not record how it was written, so an FSDP checkpoint resumes in one process or under DDP and vice versa
(tests/train: 2-rank FSDP -> 2-rank FSDP -> 1 process, on CPU). Works with gloo on CPU (tested) and is meant
for NCCL on GPU (not tested here); not with fp16 (``GradScaler`` would look for infs in each rank's shard
only, so the ranks could disagree on skipping a step); outside torchrun (one process) ``fsdp`` changes nothing.
After training, :func:`unshard` makes the model whole again on every rank, so what follows ``fit`` (evaluation,
export) sees a plain module.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.distributed as dist
from torch import nn

from masklab.core.contract import LossOutput, Trainable

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel


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


def broadcast_text(text: str, info: DistInfo) -> str:
    """Rank 0's ``text`` on every rank (a collective: every rank calls it; ``text`` itself in one process)."""
    if info.world == 1:
        return text
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    dist.broadcast(size, src=0)
    buffer = data if info.rank == 0 else torch.empty(int(size.item()), dtype=torch.uint8)
    dist.broadcast(buffer, src=0)
    return bytes(buffer.tolist()).decode("utf-8")


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


def wait_for_all(info: DistInfo) -> None:
    """Barrier before a normal teardown. Rank 0 still writes the last checkpoint and the loss plot when the
    others are done; a rank that tore down gloo meanwhile could abort ("terminate called without an active
    exception", seen in about 1 of 3 two-rank CPU runs)."""
    if info.enabled and dist.is_initialized():
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(code: int) -> None:
    """End a process started by torchrun (``WORLD_SIZE`` > 1) with ``code`` via ``os._exit``, after flushing the
    standard streams; elsewhere return. Call it only once everything is written (checkpoints are atomic): skipping
    the interpreter's teardown avoids a gloo abort at exit ("terminate called without an active exception", no
    Python frame) that made a finished two-rank CPU run exit non-zero now and then."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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
    """Routes ``training_loss`` through ``forward`` so DDP's gradient hooks (FSDP's weight gathering) are armed
    on every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, generator: torch.Generator) -> LossOutput:
        return cast(Trainable, self.model).training_loss(batch, generator)  # fit checked it has training_loss


def wrap(model: nn.Module, info: DistInfo, device: torch.device, *, fsdp: bool = False) -> nn.Module:
    """The module the loop calls: ``LossModule(model)``; when distributed, inside DDP or (``fsdp``) sharded.

    With ``fsdp`` the model's parameters are replaced by sharded ones: build the optimizer afterwards.
    """
    module = LossModule(model)
    if not info.enabled:
        return module
    if fsdp:
        return shard(module, info, device)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def shard(module: LossModule, info: DistInfo, device: torch.device) -> LossModule:
    """FSDP2 in place: each Block of each Encoder, then the root (see the module docstring)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from masklab.nn.blocks import Encoder

    mesh = init_device_mesh(device.type, (info.world,))
    blocks = [block for m in module.modules() if isinstance(m, Encoder) for block in m.blocks]
    for block in blocks:
        fully_shard(block, mesh=mesh)
    # The root is the LossModule, not the model: FSDP2 gathers a unit's weights in its forward hook, and the
    # loop enters through LossModule.forward, while training_loss may read parameters (mask tokens, tied
    # embeddings) before or without calling model.forward.
    fully_shard(module, mesh=mesh)
    return module


def _fsdp_root(wrapped: nn.Module) -> nn.Module | None:
    """The FSDP2 root behind ``wrapped`` (also under ``torch.compile``), or None when it is not sharded."""
    if not (dist.is_available() and dist.is_initialized()):  # one process: skip importing FSDP at all
        return None
    from torch.distributed.fsdp import FSDPModule

    root: nn.Module = getattr(wrapped, "_orig_mod", wrapped)
    return root if isinstance(root, FSDPModule) else None


@contextlib.contextmanager
def gradient_sync(wrapped: nn.Module, info: DistInfo, enabled: bool) -> Iterator[None]:
    """Inside, backward averages gradients over ranks only if ``enabled`` (the last micro-batch of a step);
    otherwise they accumulate locally (DDP ``no_sync``, FSDP2 ``set_requires_gradient_sync(False)``)."""
    if enabled or not info.enabled:
        yield
        return
    root = _fsdp_root(wrapped)
    if root is None:
        # DDP, possibly behind torch.compile's OptimizedModule (which forwards attribute reads to it); the cast
        # is for nn.Module.__getattr__'s stub, which types every attribute as ``Tensor | Module``.
        with cast("DistributedDataParallel", wrapped).no_sync():
            yield
        return
    # _fsdp_root only returns FSDPModule instances; the cast is for nn.Module.__getattr__'s stub.
    fsdp_root = cast("FSDPModule", root)
    fsdp_root.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        fsdp_root.set_requires_gradient_sync(True)


def local_value(value: Any) -> Any:
    """A plain tensor for a replicated DTensor (FSDP's ``clip_grad_norm_`` returns one); else ``value``."""
    return value.full_tensor() if hasattr(value, "full_tensor") else value


# ---------------------------------------------------------------------------------- FSDP checkpoints
_PREFIX = "model."  # LossModule.model: the root's parameter names start with it, checkpoint names do not


def _param_names(root: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The root's parameter name of optimizer index i (indices run over the param groups in order)."""
    names = {id(p): name for name, p in root.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


class _StateView:
    """What ``checkpoint.save_training_state`` reads from a model or an optimizer: ``state_dict()``."""

    def __init__(self, state: dict) -> None:
        self._state = state

    def state_dict(self) -> dict:
        return self._state


def full_state(wrapped: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    """``(model, optimizer)`` stand-ins whose ``state_dict()`` is the full, single-process state.

    Unsharded: ``model`` and ``optimizer`` themselves. Under FSDP this is a collective (call it on every
    rank): rank 0 gets the weights and the AdamW state gathered on CPU, keyed as a single process keys them
    (``optim`` state by parameter index); the other ranks get empty states.
    """
    root = _fsdp_root(wrapped)
    if root is None:
        return model, optimizer
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(root, options=options)
    optim = get_optimizer_state_dict(root, optimizer, options=options)
    index = {name: i for i, name in enumerate(_param_names(root, optimizer))}
    model_state = {name.removeprefix(_PREFIX): tensor for name, tensor in weights.items()}
    # Hyper-parameters and the index lists come from the local optimizer: identical on every rank.
    groups = optimizer.state_dict()["param_groups"]
    state = optim.get("state", {})
    if not isinstance(state, dict):
        raise TypeError(f"get_optimizer_state_dict returned a 'state' of type {type(state).__name__}, expected a dict")
    optim_state = {"state": {index[name]: entries for name, entries in state.items()},
                   "param_groups": groups}  # fmt: skip
    return _StateView(model_state), _StateView(optim_state)


# Where FSDP2 hooks a module: forward (gathering / freeing the weights) and state dicts (re-sharding them).
_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
               "_load_state_dict_post_hooks")  # fmt: skip


def _fsdp_hook(hook: Any) -> bool:
    hook = getattr(hook, "hook", hook)  # nn.Module wraps some hooks in a _WrappedHook
    return str(getattr(getattr(hook, "func", hook), "__module__", "")).startswith("torch.distributed.fsdp")


def unshard(wrapped: nn.Module) -> None:
    """Undo FSDP in place after training (a collective: every rank calls it, in the same state): each sharded
    parameter becomes a plain ``nn.Parameter`` holding the full tensor (tied weights stay tied), and FSDP's
    classes, hooks and state leave the modules. The model ``fit`` hands back is then a normal module on every
    rank, as after DDP: it evaluates, exports and saves without a process group. Unsharded: nothing to do."""
    root = _fsdp_root(wrapped)
    if root is None:
        return
    from torch.distributed._composable import contract
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    for module in root.modules():
        if isinstance(module, FSDPModule):
            module.reshard()  # the sharded parameters back on the modules (a no-op after a whole step)
    full: dict[int, nn.Parameter] = {}
    with torch.no_grad():
        for module in root.modules():  # one order on every rank: full_tensor() is an all-gather
            for name, param in list(module._parameters.items()):
                if isinstance(param, DTensor):
                    if id(param) not in full:
                        full[id(param)] = nn.Parameter(param.full_tensor(), requires_grad=param.requires_grad)
                    module._parameters[name] = full[id(param)]
    for module in root.modules():
        if isinstance(module, FSDPModule):  # fully_shard made its class FSDP<Class>(FSDPModule, Class)
            module.__class__ = next(base for base in type(module).__bases__ if base is not FSDPModule)
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, {})
            for key in [key for key, hook in hooks.items() if _fsdp_hook(hook)]:
                del hooks[key]
        for key in ("_is_fsdp_managed_module", "_fsdp_use_orig_params", getattr(contract, "STATE_KEY", ""),
                    getattr(contract, "REGISTRY_KEY", "")):  # fmt: skip
            module.__dict__.pop(key, None)


def _local_shard(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """This rank's shard of ``full``, laid out like the DTensor ``like``; cut locally, no communication.

    (``set_model_state_dict(full_state_dict=True)`` would scatter from rank 0 instead, which gloo refuses for
    uneven shards such as a ``(1,)`` bias on 2 ranks.)
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor) or full.shape != like.shape:
        return full
    return distribute_tensor(full.to(like.device), like.device_mesh, like.placements, src_data_rank=None)


class _ShardedModel:
    """``load_state_dict(full single-process state)`` onto a sharded model: every rank keeps its shard."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root

    def load_state_dict(self, state: dict[str, torch.Tensor]):
        params = dict(self.root.named_parameters())
        sharded = {_PREFIX + n: _local_shard(t, params[_PREFIX + n]) if _PREFIX + n in params else t
                   for n, t in state.items()}  # fmt: skip
        return self.root.load_state_dict(sharded)  # strict: missing / unexpected names are errors as usual


class _ShardedOptimizer:
    """``load_state_dict(index-keyed single-process AdamW state)`` onto the optimizer of a sharded model."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def load_state_dict(self, state: dict) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        entries = state["state"]
        # Sorted: the optimizer keeps this insertion order, and gathering the state for the next checkpoint
        # runs one collective per entry in that order, so it must be the same on every rank (the order a
        # checkpoint file's tensors load in is not).
        try:
            sharded = {i: {name: _local_shard(entries[i][name], params[int(i)]) for name in sorted(entries[i])}
                       for i in sorted(entries, key=int)}  # fmt: skip
        except IndexError as err:
            raise ValueError(f"the saved optimizer state has more parameters than this model ({len(params)})") from err
        self.optimizer.load_state_dict({"state": sharded, "param_groups": state["param_groups"]})


def state_loaders(wrapped: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[Any, Any]:
    """``(model, optimizer)`` stand-ins whose ``load_state_dict`` takes the full, single-process state.

    Unsharded: ``model`` and ``optimizer`` themselves. Under FSDP every rank passes the whole checkpoint and
    keeps its shard (cut locally: no collective).
    """
    root = _fsdp_root(wrapped)
    if root is None:
        return model, optimizer
    return _ShardedModel(root), _ShardedOptimizer(optimizer)
