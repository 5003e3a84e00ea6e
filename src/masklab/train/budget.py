"""Turn a wall-clock budget (``--minutes``) into a step count, so warmup and cosine decay fit the budget."""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from masklab.core.contract import Trainable, TrainData
from masklab.core.device import resolve_device
from masklab.train.config import TrainConfig
from masklab.train.loop import move_to, resolve_precision
from masklab.train.optim import build_optimizer


def calibrate_steps(model: nn.Module, data: TrainData, cfg: TrainConfig, seconds: float, *, trials: int = 5) -> int:
    """Optimizer steps of ``cfg`` that fit in ``seconds`` on this machine, keeping 10% headroom for logging and
    checkpoints (:func:`seconds_per_step`). Pair it with ``TrainConfig.max_seconds`` as a hard stop in case the
    machine gets busier."""
    if seconds <= 0:
        raise ValueError(f"the time budget must be > 0 seconds, got {seconds}")
    return max(1, int(0.9 * seconds / seconds_per_step(model, data, cfg, trials=trials)))


def seconds_per_step(model: nn.Module, data: TrainData, cfg: TrainConfig, *, trials: int = 5) -> float:
    """Wall-clock seconds of one optimizer step of ``cfg`` on this machine: the median of ``trials`` full steps
    (batch building, forward, backward, AdamW; ``grad_accum`` micro-batches; ``cfg.precision`` autocast) on a
    throwaway copy of the model, after one uncounted step that warms up allocators and kernels."""
    device = resolve_device(cfg.device)
    amp_dtype = resolve_precision(cfg.precision, device)
    probe = copy.deepcopy(model).to(device).train()
    if not isinstance(probe, Trainable):
        raise TypeError(f"{type(model).__name__} has no training_loss(batch, generator) method")
    optimizer = build_optimizer(probe, cfg)
    generator = torch.Generator().manual_seed(0)
    micro = cfg.batch_size // cfg.grad_accum
    times = []
    for _ in range(trials + 1):
        start = time.perf_counter()
        for _ in range(cfg.grad_accum):
            indices = torch.randint(len(data), (micro,), generator=generator)
            batch = move_to(data.get_batch(indices, generator), device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = probe.training_loss(batch, generator).loss
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    timed = sorted(times[1:])
    return timed[len(timed) // 2]  # the median of the timed steps
