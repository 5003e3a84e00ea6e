"""Score-guided masking: hide the tokens a score ranks highest (or lowest), with MAE's exact per-row budget.

The score is anything per token: the attention a token receives (AttMask, Kakogeorgiou et al. 2022; SemMAE's
attention-derived parts, Li et al. 2022) or a learned masker's Gumbel-perturbed logits
(:mod:`masklab.masks.learned`). AttMask's finding (Sec. 4): hiding the *most* attended patches ("high") makes
a harder, more useful pretext task than random masking, while hiding the *least* attended ("low", mostly
background) makes it easier.

Polarity (masklab convention): ``masked: bool (B, L)`` True = hidden; ``padding: bool (B, L)`` True = padded,
never hidden. Attention weights ``(B, H, Lq, Lk)`` are the reference path's (``Encoder(...,
return_weights=True)``): row ``q`` is the distribution of query ``q`` over the keys.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from masklab.masks.generators import MaskSample, ids_from_masked

if TYPE_CHECKING:  # the registry imports this module
    from masklab.masks.strategies import MaskRequest

__all__ = ["attention_guided_masking", "masked_count_for", "score_masking", "token_importance"]

Mode = Literal["high", "low"]


def _check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 <= ratio < 1:
        raise ValueError(f"ratio must be a number in [0, 1), got {ratio!r}")


def _check_scores(scores: Tensor, padding: Tensor | None) -> None:
    if not isinstance(scores, Tensor) or scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(f"scores must be a float tensor (B, L), got {getattr(scores, 'shape', scores)!r}")
    if scores.numel() == 0:
        raise ValueError(f"scores must be non-empty (empty input), got shape {tuple(scores.shape)}")
    if padding is not None and (
        not isinstance(padding, Tensor) or padding.dtype != torch.bool or padding.shape != scores.shape
    ):
        raise ValueError(f"padding must be a bool tensor {tuple(scores.shape)}, got {getattr(padding, 'shape', None)}")
    real = scores if padding is None else scores[~padding]
    if bool(torch.isnan(real).any()):
        raise ValueError("scores contain NaN at real (non-padded) tokens")


def _ranking_key(scores: Tensor) -> Tensor:
    """Detached scores to rank: float64 stays float64 (a cast would tie distinct scores), others in float32."""
    key = scores.detach()
    return key if key.dtype == torch.float64 else key.float()


def masked_count_for(n_real: Tensor, ratio: float) -> Tensor:
    """Tokens hidden per row, long (B,): ``n - int(n * (1 - ratio))`` for ``n_real`` (B,) real tokens.

    The budget of MAE's ``random_masking`` (and masklab's), computed with Python's ``int`` per possible
    count so float rounding matches it exactly.
    """
    top = int(n_real.max()) if n_real.numel() else 0
    table = torch.tensor([n - int(n * (1 - ratio)) for n in range(top + 1)], device=n_real.device)
    return table[n_real]


def score_masking(
    scores: Tensor,
    ratio: float,
    *,
    padding: Tensor | None = None,
    descending: bool = True,
) -> MaskSample:
    """Hide the ``n - int(n * (1 - ratio))`` highest-scoring real tokens of each row (lowest if not ``descending``).

    Args:
        scores: float (B, L), one score per token (no gradient is needed or kept); ranked in float64 when
            float64, else in float32.
        ratio: fraction hidden, in [0, 1).
        padding: bool (B, L), True = padded: never hidden, not counted in ``n``, ranked after every real token.

    Returns:
        :class:`MaskSample` with ``masked`` bool (B, L), True = hidden. Ranks are by a stable sort, so ties
        (e.g. equal attention) go to the earlier position and the count is exact whatever the scores.
        ``ids_keep``/``ids_restore`` (visible then hidden, each ascending) exist when all rows hide the same count.
    """
    _check_ratio(ratio)
    _check_scores(scores, padding)
    batch, length = scores.shape
    key = _ranking_key(scores)
    key = key if descending else -key
    order = torch.sort(key, dim=1, descending=True, stable=True).indices  # (B, L) best first
    if padding is not None:  # padded positions rank after every real token, a real -inf included
        order = order.gather(1, torch.sort(padding.gather(1, order).to(torch.uint8), dim=1, stable=True).indices)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(length, device=order.device).expand_as(order))
    n_real = torch.full((batch,), length, device=scores.device) if padding is None else (~padding).sum(dim=1)
    masked = rank < masked_count_for(n_real, ratio)[:, None]  # (B, L)
    if padding is not None:
        masked &= ~padding
    counts = masked.sum(dim=1)
    if bool((counts != counts[0]).any()):
        return MaskSample(masked)
    return MaskSample(masked, *ids_from_masked(masked))


def token_importance(
    weights: list[Tensor],
    cls_index: int | None = None,
    *,
    layer: int | None = -1,
    padding: Tensor | None = None,
) -> Tensor:
    """Per-token importance ``(B, Lk)`` from attention weights, averaged over heads.

    Args:
        weights: one float (B, H, Lq, Lk) per layer (``Encoder(..., return_weights=True)``).
        cls_index: the [CLS] query position: importance = the attention [CLS] pays to each key (AttMask,
            DINO's attention maps). None: mean attention each key *receives* over the real queries.
        layer: which layer (default the last, as AttMask); None averages all layers.
        padding: bool (B, Lq), True = padded query, left out of the "received" average (padded keys already
            get weight 0 from the reference path).

    Returns:
        float (B, Lk). It includes the [CLS] column itself; drop it (``[:, 1:]`` when CLS is first) before
        masking patches.
    """
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ValueError("weights must be a non-empty list of (B, H, Lq, Lk) tensors, one per layer")
    shape = weights[0].shape
    if any(not isinstance(w, Tensor) or w.ndim != 4 or w.shape != shape for w in weights):
        raise ValueError(f"every layer's weights must be (B, H, Lq, Lk) of one shape, got "
                         f"{[tuple(getattr(w, 'shape', ())) for w in weights]}")  # fmt: skip
    if layer is not None and not -len(weights) <= layer < len(weights):
        raise ValueError(f"layer {layer} is out of range for {len(weights)} layers")
    chosen = torch.stack(list(weights)).mean(0) if layer is None else weights[layer]  # (B, H, Lq, Lk)
    per_query = chosen.mean(dim=1)  # (B, Lq, Lk) head average
    B, Lq, _ = per_query.shape
    if cls_index is not None:
        if not -Lq <= cls_index < Lq:
            raise ValueError(f"cls_index {cls_index} is out of range for {Lq} queries")
        return per_query[:, cls_index]  # (B, Lk)
    if padding is None:
        return per_query.mean(dim=1)
    if padding.shape != (B, Lq) or padding.dtype != torch.bool:
        raise ValueError(f"padding must be a bool tensor ({B}, {Lq}), got {getattr(padding, 'shape', padding)}")
    real = (~padding).to(per_query.dtype)[..., None]  # (B, Lq, 1)
    return (per_query * real).sum(dim=1) / real.sum(dim=1).clamp_min(1)  # (B, Lk)


def attention_guided_masking(
    scores: Tensor,
    ratio: float,
    mode: Mode = "high",
    *,
    generator: torch.Generator | None = None,
    noise_scale: float = 0.0,
    padding: Tensor | None = None,
) -> MaskSample:
    """AttMask: hide the most (``mode="high"``) or least (``"low"``) important tokens of each row.

    Args:
        scores: float (B, L) importance, e.g. :func:`token_importance` without the [CLS] column.
        ratio: fraction hidden in [0, 1); each row hides ``n - int(n * (1 - ratio))`` real tokens.
        noise_scale: randomness among near-ties: finite scores are rescaled to [0, 1] per row (min-max over
            the row's finite real scores) and ``noise_scale * U[0, 1)`` is added (drawn on CPU from
            ``generator``), so tokens whose importance differs by less than ``noise_scale`` of the row's range
            may swap. A score of +inf / -inf keeps its place whatever the noise, as in :func:`score_masking`:
            above / below every finite score (ties among them: the earlier position first). 0 = deterministic.
        padding: bool (B, L), True = padded, never hidden.

    Returns:
        :class:`MaskSample`, ``masked`` bool (B, L) True = hidden.
    """
    if mode not in ("high", "low"):
        raise ValueError(f"mode must be 'high' or 'low', got {mode!r}")
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, numbers.Real) or noise_scale < 0:
        raise ValueError(f"noise_scale must be a number >= 0, got {noise_scale!r}")
    if generator is not None and (not isinstance(generator, torch.Generator) or generator.device.type != "cpu"):
        raise ValueError(f"generator must be a CPU torch.Generator or None, got {generator!r}")
    _check_scores(scores, padding)
    key = _ranking_key(scores)  # (B, L)
    if noise_scale > 0:
        finite = torch.isfinite(key) if padding is None else torch.isfinite(key) & ~padding  # (B, L)
        lo = key.masked_fill(~finite, math.inf).amin(dim=1, keepdim=True)
        hi = key.masked_fill(~finite, -math.inf).amax(dim=1, keepdim=True)
        scaled = (key - lo) / (hi - lo).clamp_min(torch.finfo(key.dtype).tiny)  # (B, L) in [0, 1] where finite
        key = torch.where(finite, scaled, key)  # ±inf stay (inf - inf would be NaN); padding is ranked last anyway
        key = key + noise_scale * torch.rand(key.shape, generator=generator).to(key.device)
    return score_masking(key, ratio, padding=padding, descending=mode == "high")


# ---------------------------------------------------------------- strategies (see masklab.masks.strategies)


def attention_high_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``attention-high``: hide the most important tokens of ``request.scores`` (``options["noise_scale"]``)."""
    return _attention_strategy(request, generator, "high")


def attention_low_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``attention-low``: hide the least important tokens of ``request.scores``."""
    return _attention_strategy(request, generator, "low")


def _attention_strategy(request: MaskRequest, generator: torch.Generator | None, mode: Mode) -> MaskSample:
    if request.scores is None:
        raise ValueError(f"mask kind 'attention-{mode}' needs token scores (B, L) from the model")
    noise_scale = float(request.options.get("noise_scale", 0.0))
    sample = attention_guided_masking(
        request.scores, request.ratio, mode, generator=generator, noise_scale=noise_scale, padding=request.protected
    )
    if request.device is None:
        return sample
    device = request.device
    keep, restore = sample.ids_keep, sample.ids_restore
    return MaskSample(
        sample.masked.to(device),
        None if keep is None else keep.to(device),
        None if restore is None else restore.to(device),
    )
