"""Reductions, softmax, losses and pooling that respect masks.

Polarity: ``masked`` / ``padding`` are True where an element is hidden or padded. The ``visible_*``
reductions leave such elements *out* (they reduce over what is visible). The mask covers the leading dims
of ``x`` (e.g. ``(B, L)`` for ``x (B, L, D)``) and is broadcast over the trailing ones. A reduction over
nothing gives 0, never NaN.

:func:`loss_on_masked` does the opposite on purpose: it averages a per-token loss *over* the masked positions
(the tokens the model had to predict), leaving padding out.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _align(x: Tensor, masked: Tensor, name: str = "masked") -> Tensor:
    if not isinstance(masked, Tensor) or masked.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor (True = hidden), got {getattr(masked, 'dtype', masked)}")
    if masked.ndim == x.ndim:
        try:
            torch.broadcast_shapes(masked.shape, x.shape)
        except RuntimeError as err:
            raise ValueError(f"{name} of shape {tuple(masked.shape)} does not broadcast to x {tuple(x.shape)}") from err
        return masked
    if masked.ndim > x.ndim or tuple(masked.shape) != tuple(x.shape[: masked.ndim]):
        raise ValueError(f"{name} of shape {tuple(masked.shape)} does not cover the leading dims of x {tuple(x.shape)}")
    return masked.view(*masked.shape, *([1] * (x.ndim - masked.ndim)))


def apply_mask(x: Tensor, masked: Tensor, fill: float = 0.0) -> Tensor:
    """Return ``x`` with hidden elements replaced by ``fill`` (e.g. zero the masked patches of an image)."""
    return x.masked_fill(_align(x, masked), fill)


def visible_sum(x: Tensor, masked: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """Sum of ``x`` over ``dim`` leaving out hidden elements."""
    return apply_mask(x, masked).sum(dim=dim, keepdim=keepdim)


def visible_count(x: Tensor, masked: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """Number of visible elements along ``dim`` (in ``x``'s dtype, broadcast like :func:`visible_sum`)."""
    visible = (~_align(x, masked)).to(x.dtype).expand_as(x)
    return visible.sum(dim=dim, keepdim=keepdim)


def visible_mean(x: Tensor, masked: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """Mean of ``x`` over ``dim`` leaving out hidden elements; 0 where everything is hidden."""
    count = visible_count(x, masked, dim, keepdim)
    return visible_sum(x, masked, dim, keepdim) / count.clamp_min(1)


def visible_max(x: Tensor, masked: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """Max of ``x`` over ``dim`` leaving out hidden elements; 0 where everything is hidden."""
    aligned = _align(x, masked)
    values = x.masked_fill(aligned, float("-inf")).amax(dim=dim, keepdim=keepdim)
    empty = aligned.expand_as(x).all(dim=dim, keepdim=keepdim)
    return values.masked_fill(empty, 0.0)


def visible_softmax(x: Tensor, masked: Tensor, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` where hidden elements get probability 0; a fully hidden row is all zeros."""
    aligned = _align(x, masked)
    filled = x.masked_fill(aligned, torch.finfo(x.dtype).min)
    return torch.softmax(filled, dim=dim).masked_fill(aligned.expand_as(x).all(dim=dim, keepdim=True) | aligned, 0.0)


def visible_normalize(x: Tensor, masked: Tensor, dim: int = -1, eps: float = 1e-12) -> Tensor:
    """Divide non-negative weights by their sum over visible elements (hidden -> 0) so they sum to 1."""
    kept = apply_mask(x, masked)
    return kept / kept.sum(dim=dim, keepdim=True).clamp_min(eps)


def loss_on_masked(per_token: Tensor, masked: Tensor, padding: Tensor | None = None) -> Tensor:
    """Mean of a per-token loss over the positions the model had to predict.

    Args:
        per_token: ``(B, L)`` or ``(B, L, ...)`` loss per element (trailing dims are averaged per token).
        masked: ``bool (B, L)``, True = hidden / to be predicted; only these positions count.
        padding: optional ``bool (B, L)``, True = padded; never counts even if marked masked.

    Returns:
        Scalar. With no position to predict it is 0, still connected to the graph (zero gradients).
    """
    if masked.dtype != torch.bool:
        raise ValueError(f"masked must be bool (True = hidden), got {masked.dtype}")
    target = masked if padding is None else masked & ~padding
    if per_token.ndim > target.ndim:
        per_token = per_token.flatten(target.ndim).mean(-1)
    weight = target.to(per_token.dtype)
    # clamp (not a Python branch) keeps this free of a host-device sync.
    # where (not a product with the weight): an ignored position holding inf or NaN must not make the loss NaN.
    return torch.where(target, per_token, per_token.new_zeros(())).sum() / weight.sum().clamp_min(1)


def padding_from_lengths(lengths: Tensor, max_len: int | None = None, *, left: bool = False) -> Tensor:
    """``lengths (B,)`` -> ``padding bool (B, max_len)``, True = padded. ``left=True`` pads at the start."""
    if lengths.ndim != 1 or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be an integer tensor (B,), got {lengths.dtype} {tuple(lengths.shape)}")
    if bool((lengths < 0).any()):
        raise ValueError("lengths must be non-negative")
    longest = int(lengths.max()) if lengths.numel() else 0
    max_len = longest if max_len is None else max_len
    if max_len < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest})")
    pos = torch.arange(max_len, device=lengths.device)[None, :]  # (1, L)
    if left:
        return pos < (max_len - lengths)[:, None]
    return pos >= lengths[:, None]


def lengths_from_padding(padding: Tensor) -> Tensor:
    """``padding bool (B, L)`` -> number of real tokens per row, long ``(B,)``."""
    return (~padding).sum(dim=1)


def mean_pool(x: Tensor, padding: Tensor) -> Tensor:
    """Average ``x (B, L, D)`` over real (non-padded) timesteps -> ``(B, D)``."""
    return visible_mean(x, padding, dim=1)


def max_pool(x: Tensor, padding: Tensor) -> Tensor:
    """Max of ``x (B, L, D)`` over real timesteps -> ``(B, D)``."""
    return visible_max(x, padding, dim=1)


def last_token(x: Tensor, padding: Tensor) -> Tensor:
    """The last real timestep of each row of ``x (B, L, D)`` -> ``(B, D)``; left or right padding both work."""
    pos = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # (B, L)
    idx = pos.masked_fill(padding, -1).amax(dim=1).clamp_min(0)  # (B,)
    return x[torch.arange(x.shape[0], device=x.device), idx]


def first_token(x: Tensor, padding: Tensor) -> Tensor:
    """The first real timestep of each row of ``x (B, L, D)`` -> ``(B, D)``."""
    pos = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # (B, L)
    idx = pos.masked_fill(padding, x.shape[1]).amin(dim=1).clamp_max(x.shape[1] - 1)  # (B,)
    return x[torch.arange(x.shape[0], device=x.device), idx]
