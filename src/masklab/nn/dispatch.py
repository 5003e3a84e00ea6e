"""Pick the attention kernel for a mask rule, and say why.

Given an :class:`~masklab.masks.attention.AttnMask` rule (True = blocked), :func:`plan_attention` chooses:

- ``reference`` — explicit weights were asked for (visualisation), or the module is on the reference path;
- ``sdpa_causal`` — the rule is plain causal over equal lengths: SDPA's own ``is_causal`` kernel (flash-eligible,
  no mask tensor at all);
- ``flex`` — on CUDA at long lengths, FlexAttention with a cached ``BlockMask`` skips fully blocked tiles
  (causal, sliding window, packed documents are block-sparse);
- ``sdpa_mask`` — everything else: the rule evaluated to a dense boolean mask for SDPA. On CPU this is always
  the choice: torch has no FlexAttention backward there and its eager Flex materialises the full score matrix.

:class:`BlockMaskCache` keeps the ``BlockMask`` of batch-independent rules per length, so building one (a
vmapped pass over all blocks) happens once per shape rather than once per layer per step.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import torch

from masklab.masks.attention import AttnMask

Kernel = Literal["reference", "sdpa", "sdpa_causal", "sdpa_mask", "flex"]
FLEX_MIN_LEN = 1024  # below this, dense-mask SDPA beats Flex's block bookkeeping (bench/attention.py)


@dataclass(frozen=True)
class AttentionPlan:
    """Which kernel ran and why (``MaskedSelfAttention.last_plan``)."""

    kernel: Kernel
    reason: str


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def plan_attention(
    rule: AttnMask | None,
    *,
    q_len: int,
    kv_len: int,
    device: torch.device,
    dense_mask: bool = False,
    padding: bool = False,
    dropout: bool = False,
    return_weights: bool = False,
    reference: bool = False,
    flex_min_len: int = FLEX_MIN_LEN,
) -> AttentionPlan:
    """Choose a kernel.

    ``dense_mask``: a dense ``blocked`` tensor must be honoured too (Flex cannot take one); ``padding``: a key
    padding mask comes along (Flex folds it into the rule); ``dropout``: attention dropout is on (Flex has none).
    """
    if return_weights or reference:
        why = "attention weights requested" if return_weights else "module set to the reference path"
        return AttentionPlan("reference", why)
    if rule is None and not (dense_mask or padding):
        return AttentionPlan("sdpa", "no mask")
    if rule is not None and rule.name == "causal" and q_len == kv_len and not (dense_mask or padding):
        return AttentionPlan("sdpa_causal", "plain causal mask: SDPA is_causal kernel, no mask tensor")
    if device.type != "cuda":
        return AttentionPlan("sdpa_mask", f"{device.type}: FlexAttention has no fused kernel or backward here")
    if rule is None or dense_mask:
        return AttentionPlan("sdpa_mask", "a dense blocked tensor was given (Flex needs a rule)")
    if dropout:
        return AttentionPlan("sdpa_mask", "attention dropout is on (FlexAttention has none)")
    if not flex_available():
        return AttentionPlan("sdpa_mask", f"torch {torch.__version__} has no FlexAttention")
    if kv_len < flex_min_len:
        return AttentionPlan("sdpa_mask", f"length {kv_len} < {flex_min_len}: dense mask is cheaper than blocks")
    return AttentionPlan("flex", f"block-sparse rule {rule.name} at length {kv_len}: Flex skips blocked tiles")


class BlockMaskCache:
    """LRU cache of FlexAttention ``BlockMask`` for rules that do not read per-batch data.

    Keyed by the rule's name (rules are value-like: ``causal``, ``sliding_window(256)``), lengths, offset and
    device. Rules with per-row data (padding, document ids) change every batch and are never cached.
    """

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._store: OrderedDict[tuple, object] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, rule: AttnMask, q_len: int, kv_len: int, device: torch.device):
        if rule.batch is not None:
            self.misses += 1
            return rule.block_mask(q_len, kv_len, device=device)
        key = (rule.name, q_len, kv_len, str(device))
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        block_mask = rule.block_mask(q_len, kv_len, device=device)
        self._store[key] = block_mask
        if len(self._store) > self.maxsize:
            self._store.popitem(last=False)
        return block_mask


BLOCK_MASKS = BlockMaskCache()
_COMPILED_FLEX = None


def flex_attention(q, k, v, block_mask):
    """FlexAttention, compiled once per process on CUDA (eager elsewhere: correct, unfused)."""
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention as flex

    if q.device.type != "cuda":
        return flex(q, k, v, block_mask=block_mask)
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex, dynamic=False)
    return _COMPILED_FLEX(q, k, v, block_mask=block_mask)
