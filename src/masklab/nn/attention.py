"""Masked self-attention: a fused SDPA path for training and a readable reference path that returns weights.

Shape legend: ``B`` batch, ``H`` heads, ``Lq``/``Lk`` query/key length, ``D`` width, ``Dh = D / H``.

Mask polarity (masklab convention, stated once):
    ``blocked: bool (..., Lq, Lk)`` True = query may NOT attend to key (broadcast to ``(B, H, Lq, Lk)``);
    ``padding: bool (B, Lk)``        True = padded key, attended by no query.
Conversion to SDPA's polarity happens in :mod:`masklab.masks.convert`. A query row with nothing to attend to
returns zeros (never NaN) on both paths, forward and backward.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.masks import attention as attn_masks
from masklab.masks.convert import padding_to_blocked, sdpa_safe
from masklab.nn.dispatch import BLOCK_MASKS, AttentionPlan, flex_attention, plan_attention

Backend = Literal["sdpa", "reference"]


def merge_masks(
    q_len: int,
    kv_len: int,
    *,
    blocked: Tensor | None = None,
    padding: Tensor | None = None,
    is_causal: bool = False,
    device: torch.device | None = None,
) -> Tensor | None:
    """Combine the ways a caller can restrict attention into one ``blocked (B|1, 1|H, Lq, Lk)`` (or None).

    Causal is bottom-right aligned: the queries are the last ``Lq`` of ``Lk`` positions (KV-cache decoding).
    """
    out = blocked
    if padding is not None:
        if padding.shape[-1] != kv_len:
            raise ValueError(f"padding covers {padding.shape[-1]} keys but attention has {kv_len}")
        pad = padding_to_blocked(padding)  # (B, 1, 1, Lk)
        out = pad if out is None else out | pad
    if is_causal:
        tri = attn_masks.causal().dense(q_len, kv_len, device=device)  # (1, 1, Lq, Lk)
        out = tri if out is None else out | tri
    return out


def reference_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    blocked: Tensor | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Readable attention: ``softmax(q kᵀ * scale + mask) v`` with explicit weights.

    Args:
        q: ``(B, H, Lq, Dh)``; k, v: ``(B, H, Lk, Dh)``; blocked: bool broadcastable to ``(B, H, Lq, Lk)``.

    Returns:
        ``out (B, H, Lq, Dh)`` and ``weights (B, H, Lq, Lk)``; blocked pairs have weight exactly 0 and fully
        blocked rows are all zeros.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, Lq, Lk)
    if blocked is not None:
        # The dtype minimum rather than -inf keeps a fully blocked row finite; it is zeroed below.
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    if blocked is not None:
        weights = weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (B, H, Lq, Dh), (B, H, Lq, Lk)


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    blocked: Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Fused attention via ``F.scaled_dot_product_attention``; same contract as :func:`reference_attention`.

    ``is_causal`` without ``blocked`` and with ``Lq == Lk`` uses the kernel's own causal path (no mask tensor).
    """
    if is_causal and (blocked is not None or q.shape[-2] != k.shape[-2]):
        blocked = merge_masks(q.shape[-2], k.shape[-2], blocked=blocked, is_causal=True, device=q.device)
        is_causal = False
    if blocked is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, dropout_p=dropout_p, scale=scale)
    attn_mask, dead = sdpa_safe(blocked)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return out if dead is None else out.masked_fill(dead, 0.0)


class KVCache:
    """Keys and values of the positions seen so far by one attention layer, grown in place.

    ``k``/``v``: ``(B, H, T, Dh)`` after the first :meth:`update`.
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k, v (B, H, Lnew, Dh)`` and return all keys/values ``(B, H, T + Lnew, Dh)``."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        return self.k, self.v


_DECODE_PLAN = AttentionPlan("sdpa", "one cached-decoding query: SDPA with the key padding only")


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection.

    Args:
        dim: model width ``D``; heads: ``H`` (must divide D).
        backend: ``"sdpa"`` (fused kernels; the training path) or ``"reference"`` (explicit weights).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attn_dropout: float = 0.0,
        proj_dropout: float = 0.0,
        backend: Backend = "sdpa",
    ) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        if backend not in ("sdpa", "reference"):
            raise ValueError(f"backend must be 'sdpa' or 'reference', got {backend!r}")
        self.heads = heads
        self.head_dim = dim // heads
        self.backend: Backend = backend
        self.attn_dropout = attn_dropout
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(
        self,
        x: Tensor,
        *,
        padding: Tensor | None = None,
        blocked: Tensor | None = None,
        rule: attn_masks.AttnMask | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend ``x (B, L, D)`` to itself (plus cached past keys when ``cache`` is given).

        Args:
            padding: ``bool (B, Lk)``, True = padded key (Lk includes cached positions).
            blocked: ``bool`` broadcastable to ``(B, H, L, Lk)``, True = may NOT attend.
            rule: an :class:`~masklab.masks.attention.AttnMask` (causal, sliding window, documents, ...); unlike
                a dense ``blocked`` it lets the dispatcher use FlexAttention or SDPA's causal kernel.
            is_causal: add a causal mask (bottom-right aligned when a cache holds earlier positions).
            cache: a :class:`KVCache` to read past keys/values from and append this step's to.
            return_weights: also return ``weights (B, H, L, Lk)``; computed on the reference path for this
                call only, so the training path is untouched.

        Returns:
            ``(B, L, D)``, or ``((B, L, D), weights)`` with ``return_weights=True``. The kernel that ran and why
            is left in :attr:`last_plan`.
        """
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        q, k, v = qkv.unbind(0)  # (B, H, L, Dh) each
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H, Lk, Dh)
            if L == 1 and rule is None and blocked is None and not return_weights and self.backend == "sdpa":
                # One new query per row, as in KV-cache decoding: it may see every unpadded cached key, so SDPA
                # runs directly without planning (the per-token cost is mostly Python here).
                self.last_plan = _DECODE_PLAN
                dropout_p = self.attn_dropout if self.training else 0.0
                if padding is None:
                    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
                else:
                    out = sdpa_attention(q, k, v, padding_to_blocked(padding), dropout_p=dropout_p)
                out = self.proj(out.transpose(1, 2).reshape(B, L, D))  # (B, 1, D)
                return self.proj_drop(out) if self.proj_drop.p else out
        kv_len = k.shape[-2]
        # A single new query may see every cached key, so causal masking is a no-op then.
        if is_causal and not (cache is not None and L == 1):
            rule = attn_masks.causal() if rule is None else rule | attn_masks.causal()
        dropout_p = self.attn_dropout if self.training else 0.0
        plan = plan_attention(
            rule, q_len=L, kv_len=kv_len, device=x.device, dense_mask=blocked is not None,
            padding=padding is not None, dropout=dropout_p > 0, return_weights=return_weights,
            reference=self.backend == "reference",
        )  # fmt: skip
        self.last_plan: AttentionPlan = plan
        weights = None
        if plan.kernel == "flex":
            full_rule = rule if padding is None else rule | attn_masks.key_padding(padding)
            out = flex_attention(q, k, v, BLOCK_MASKS.get(full_rule, L, kv_len, x.device))
        elif plan.kernel in ("sdpa", "sdpa_causal"):
            out = sdpa_attention(q, k, v, is_causal=plan.kernel == "sdpa_causal", dropout_p=dropout_p)
        else:
            dense = None if rule is None else rule.dense(L, kv_len, device=x.device)  # (B|1, 1, L, Lk)
            merged = merge_masks(L, kv_len, blocked=_union(dense, blocked), padding=padding, device=x.device)
            if plan.kernel == "reference":
                out, weights = reference_attention(q, k, v, merged, dropout_p=dropout_p)
            else:
                out = sdpa_attention(q, k, v, merged, dropout_p=dropout_p)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, L, D)))  # (B, L, D)
        return (out, weights) if return_weights else out


def _union(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return a | b
