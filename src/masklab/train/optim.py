"""AdamW with the usual no-decay groups, a warmup + cosine learning rate, and flat optimizer state.

The schedule is a pure function of the step (:func:`lr_at`), so there is no scheduler object whose state
would have to be checkpointed. :func:`optimizer_state_tensors` / :func:`load_optimizer_state` turn the AdamW
state into flat safetensors entries ``optim.{param_index}.{exp_avg|exp_avg_sq|step}`` plus a JSON string of
the param groups' hyper-parameters, and back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from masklab.train.config import TrainConfig

OPTIM_PREFIX = "optim."

# Parameters that are positions or learned placeholder vectors, not feature detectors: decaying them toward
# zero only erases information (MAE / BEiT / HF BERT exclude them the same way).
NO_DECAY_NAME_PARTS = ("pos_embed", "cls_token", "mask_token", "embeddings.position")


def uses_weight_decay(name: str, param: torch.Tensor) -> bool:
    """The no-decay rule: biases and norm weights (any ``ndim < 2``) and position / special-token
    parameters (name contains one of :data:`NO_DECAY_NAME_PARTS`) get no weight decay; every other
    parameter (linear / conv / embedding matrices) does."""
    return param.ndim >= 2 and not any(part in name for part in NO_DECAY_NAME_PARTS)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups by :func:`uses_weight_decay`: ``[decay, no_decay]``; frozen parameters are left
    out, and an empty group is dropped.

    A model with an ``lr_scale(name) -> float`` method (layer-wise learning-rate decay, e.g. a fine-tuned
    segmenter) gets one such pair per scale, each group carrying ``"lr_scale"``: the training loop sets that
    group's rate to ``lr_scale`` x the scheduled rate."""
    lr_scale = getattr(model, "lr_scale", None)
    scale_of: Callable[[str], float] | None = lr_scale if callable(lr_scale) else None
    groups: dict[tuple[float, bool], list[nn.Parameter]] = {}  # (scale, decays) -> parameters; none empty
    for name, param in model.named_parameters():
        if param.requires_grad:
            scale = float(scale_of(name)) if scale_of is not None else 1.0
            groups.setdefault((scale, uses_weight_decay(name, param)), []).append(param)
    order = sorted(groups, key=lambda key: (-key[0], not key[1]))  # by scale, decay before no-decay
    return [{"params": groups[key], "weight_decay": weight_decay if key[1] else 0.0,
             **({"lr_scale": key[0]} if scale_of is not None else {})} for key in order]  # fmt: skip


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; ``fused=False`` because fused kernels are not bit-reproducible
    across devices and their state layout differs. On CPU the ``foreach`` implementation (torch's default
    elsewhere): the same updates bit for bit as the per-tensor loop torch picks on CPU, at less than half its
    cost for models of many small tensors (tested in ``tests/train/test_train_optim.py``)."""
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    on_cpu = all(p.device.type == "cpu" for group in groups for p in group["params"])
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=False, foreach=True if on_cpu else None
    )


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (1-based: the update that brings the count to ``step``).

    Linear warmup from 0 at step 0 to ``cfg.lr`` at ``cfg.warmup_steps``, then a half cosine down to
    ``cfg.min_lr`` at ``cfg.steps`` (SGDR, Loshchilov & Hutter 2017, without restarts); clamped outside
    ``[0, cfg.steps]``. So the first update already moves (lr/warmup) and the last one uses exactly min_lr.
    """
    step = min(max(step, 0), cfg.steps)
    if step < cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    decay_steps = cfg.steps - cfg.warmup_steps
    if decay_steps <= 0:
        return cfg.lr
    progress = (step - cfg.warmup_steps) / decay_steps
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * progress))


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    """Flatten ``optimizer.state_dict()`` into ``optim.{index}.{name}`` CPU tensors and a JSON string of
    the param groups (hyper-parameters plus the param indices of each group)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if not torch.is_tensor(value):
                raise TypeError(f"optimizer state {index}.{name} is a {type(value).__name__}, not a tensor")
            tensors[f"{OPTIM_PREFIX}{index}.{name}"] = value.detach().cpu().contiguous()
    return tensors, json.dumps(state["param_groups"])


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups_json: str) -> None:
    """Inverse of :func:`optimizer_state_tensors`. Raises ``ValueError`` when the saved groups do not
    match this optimizer's parameters (a different model or a changed no-decay rule)."""
    groups = json.loads(groups_json)
    for group in groups:
        if isinstance(group.get("betas"), list):
            # JSON has no tuples; AdamW documents betas as a tuple.
            group["betas"] = tuple(group["betas"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            index, _, name = key[len(OPTIM_PREFIX) :].partition(".")
            state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"saved optimizer state does not fit this model's parameters: {err}") from err
