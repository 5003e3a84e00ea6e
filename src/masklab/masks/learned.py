"""Learned, adversarial masks: a small network proposes which tokens to hide, trained to make reconstruction hard.

ADIOS (Shi et al. 2022) trains an occlusion network to *maximise* the loss the encoder minimises; AutoMAE
(Chen et al. 2023) does the same for MAE with a Gumbel-softmax mask generator. Here:

1. :class:`~masklab.models.mae.masker.LearnedMasker` (a model: it lives in ``models/``) maps tokens
   ``(B, L, P)`` (patch pixels, token embeddings, cell embeddings) to
   logits ``(B, L)``: a linear embedding, a learned position table and one :class:`masklab.nn.Encoder` block
   (context, so a patch's score can depend on its neighbours).
2. :func:`sample` hides the top ``n - int(n * (1 - ratio))`` of ``logits + Gumbel noise`` per row: the
   Gumbel-top-k trick draws a set without replacement from the Plackett-Luce distribution of the logits
   (Kool et al. 2019), with MAE's exact budget. The straight-through soft mask has the hard mask's value and
   the gradient of ``sigmoid((logits + g - t) / tau)``, ``t`` the midpoint between the last hidden and the
   first visible perturbed score (a relaxed top-k).
3. :func:`masker_loss` is the adversarial objective: minus the reconstruction loss of the hidden tokens,
   weighted by the soft mask, with a per-row baseline (REINFORCE-style) so only *which* hidden tokens were hard
   drives the update, plus a logit-spread penalty (and optionally an entropy bonus) that keeps the masks
   random: an unregularised masker collapses to one fixed "hide the centre" mask on MNIST, and the MAE then
   never learns from the patches it is never shown.
4. :class:`~masklab.models.mae.masker.AdversarialMasking` holds the masker: ``propose`` before the model's
   forward, ``loss`` after it with the per-token losses; the model adds that objective through gradient
   reversal, so one backward and one optimizer make the min-max step (ADIOS Algorithm 1, in one update).

An untrained masker (zero-initialised head, all logits 0) draws exactly uniform random masks, so training
starts from MAE's random masking. Polarity: ``masked: bool (B, L)`` True = hidden; ``padding: bool (B, L)``
True = padded, never hidden. Noise is drawn on CPU from the explicit generator, so masks replay from a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from masklab.masks.attention_guided import score_masking
from masklab.masks.generators import MaskSample

if TYPE_CHECKING:  # the registry imports this module
    from masklab.masks.strategies import MaskRequest

__all__ = [
    "LearnedMaskSample",
    "gumbel_noise",
    "logit_spread",
    "masker_loss",
    "relaxed_topk",
    "sample",
]


@dataclass(frozen=True)
class LearnedMaskSample(MaskSample):
    """A :class:`MaskSample` plus what the masker's update needs.

    soft: float (B, L), differentiable in ``logits``; equals ``masked`` in value when drawn with ``hard=True``.
    logits: float (B, L) the masker's scores; noise: float (B, L) the Gumbel draw (replays the relaxation).
    """

    soft: Tensor | None = None
    logits: Tensor | None = None
    noise: Tensor | None = None


# ---------------------------------------------------------------------------------------------- sampling
def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel noise ``-log(-log U)`` float32 of ``shape``, drawn on CPU from ``generator``."""
    u = torch.rand(shape, generator=generator).clamp_min(torch.finfo(torch.float32).tiny)
    return -torch.log(-torch.log(u))


def _work_dtype(logits: Tensor) -> torch.dtype:
    """float32 for half-precision logits (their ties and rounding break the exact top-k), else their own dtype."""
    return torch.promote_types(logits.dtype, torch.float32)


def relaxed_topk(
    logits: Tensor,
    noise: Tensor,
    masked: Tensor,
    *,
    temperature: float = 1.0,
    padding: Tensor | None = None,
) -> Tensor:
    """Soft membership ``(B, L)`` in the hidden set: ``sigmoid((logits + noise - t) / temperature)``.

    ``t`` (detached) is the midpoint between the lowest perturbed score that is hidden and the highest that is
    visible, so ``soft > 0.5`` exactly where ``masked`` (bool (B, L), True = hidden) is. Padded positions get 0.
    Half-precision logits are relaxed in float32 and ``soft`` stays float32: rounding it back would put values
    within a rounding step of 0.5 on 0.5 (or on the wrong side of it).
    """
    perturbed = logits.to(_work_dtype(logits)) + noise  # (B, L)
    with torch.no_grad():
        visible = ~masked if padding is None else ~masked & ~padding
        last_hidden = perturbed.masked_fill(~masked, math.inf).amin(dim=1, keepdim=True)  # (B, 1)
        first_visible = perturbed.masked_fill(~visible, -math.inf).amax(dim=1, keepdim=True)  # (B, 1)
        # A row with nothing hidden (or nothing visible) puts the threshold one unit past its extreme score.
        last_hidden = torch.where(torch.isinf(last_hidden), first_visible + 2.0, last_hidden)
        first_visible = torch.where(torch.isinf(first_visible), last_hidden - 2.0, first_visible)
        threshold = 0.5 * (last_hidden + first_visible)
        threshold = torch.nan_to_num(threshold, nan=0.0, posinf=0.0, neginf=0.0)  # an all-padded row
    soft = torch.sigmoid((perturbed - threshold) / temperature)
    return soft if padding is None else soft.masked_fill(padding, 0.0)


def sample(
    logits: Tensor,
    ratio: float,
    generator: torch.Generator | None = None,
    *,
    hard: bool = True,
    temperature: float = 1.0,
    padding: Tensor | None = None,
    noise: Tensor | None = None,
) -> LearnedMaskSample:
    """Gumbel-top-k masks from ``logits`` (B, L): each row hides exactly ``n - int(n * (1 - ratio))`` real tokens.

    Args:
        logits: float (B, L); higher = more likely hidden. Gradients reach them through ``soft``.
        generator: CPU generator for the Gumbel noise (or pass ``noise`` (B, L) to replay a draw).
        hard: ``soft`` is straight-through (value = the hard mask, gradient of the relaxation); False gives
            the relaxation itself.
        temperature: relaxation temperature ``tau`` (smaller = sharper, fewer tokens get gradient).
        padding: bool (B, L), True = padded: never hidden, soft value 0.

    Returns:
        :class:`LearnedMaskSample` (``masked`` bool (B, L) True = hidden, ids when counts are equal, ``soft``).
        Half-precision (bf16 / fp16) logits are ranked and relaxed in float32: ``soft`` and ``noise`` are float32
        there, in the logits' dtype otherwise.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor (B, L), got {getattr(logits, 'shape', logits)!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if noise is None:
        noise = gumbel_noise(tuple(logits.shape), generator)
    elif noise.shape != logits.shape:
        raise ValueError(f"noise must have the logits' shape {tuple(logits.shape)}, got {tuple(noise.shape)}")
    noise = noise.to(device=logits.device, dtype=_work_dtype(logits))  # float32 for half-precision logits
    chosen = score_masking(logits.detach().to(noise.dtype) + noise, ratio, padding=padding)
    relaxed = relaxed_topk(logits, noise, chosen.masked, temperature=temperature, padding=padding)
    soft = chosen.masked.to(relaxed.dtype) + (relaxed - relaxed.detach()) if hard else relaxed
    return LearnedMaskSample(chosen.masked, chosen.ids_keep, chosen.ids_restore, soft=soft, logits=logits, noise=noise)


# -------------------------------------------------------------------------------------------- objective
def masker_loss(
    per_token_loss: Tensor,
    soft_mask: Tensor,
    *,
    masked: Tensor | None = None,
    logits: Tensor | None = None,
    padding: Tensor | None = None,
    entropy_weight: float = 0.0,
    spread_weight: float = 0.0,
) -> Tensor:
    """The masker's objective (minimised): ``-(hidden-token reconstruction loss)`` plus two regularisers.

    Args:
        per_token_loss: (B, L) or (B, L, ...) the model's loss per token (trailing dims averaged); detached
            here. Only hidden tokens are read: a visible token's loss says nothing about how hard it would
            be to predict (and MLM heads compute none), so visible entries may hold anything finite.
        soft_mask: float (B, L) from :func:`sample` (straight-through), carries the gradient to the masker.
        masked: bool (B, L) True = hidden; default ``soft_mask > 0.5`` (the straight-through value).
        logits: float (B, L) masker scores for the entropy term (required when ``entropy_weight > 0``).
        padding: bool (B, L) True = padded, left out of the entropy.
        entropy_weight: weight of ``1 - H(softmax(logits)) / log(n)`` (0 at uniform scores, 1 when collapsed).
        spread_weight: weight of the mean squared deviation of each row's logits from the row mean. This is
            the regulariser that keeps masks random: top-k of ``logits + Gumbel`` is nearly deterministic
            once logit gaps exceed the noise scale (~1.3), and Adam keeps growing the logits of tokens that
            are always hidden even though their gradient vanishes. The entropy term barely sees that
            collapse (37 equal logits out of 49 still have 93% of the maximum entropy).

    Returns:
        Scalar. Its value is minus the mean hidden-token loss (plus the entropy term); its gradient is that of
        ``-sum(soft * (loss - row mean over hidden)) / n_hidden``: hidden tokens harder than their row's
        average are pushed up, easier ones down. Without the baseline every hidden token would be pushed up
        and the masker would just reinforce whatever it happened to pick.
    """
    if soft_mask.ndim != 2 or per_token_loss.shape[:2] != soft_mask.shape:
        raise ValueError(f"per_token_loss {tuple(per_token_loss.shape)} and soft_mask {tuple(soft_mask.shape)} "
                         "must share (B, L)")  # fmt: skip
    loss = per_token_loss.detach()
    if loss.ndim > 2:
        loss = loss.flatten(2).mean(-1)  # (B, L)
    loss = loss.to(soft_mask.dtype)
    hidden = (soft_mask.detach() > 0.5) if masked is None else masked
    if padding is not None:
        hidden = hidden & ~padding
    weight = hidden.to(soft_mask.dtype)  # (B, L)
    loss = torch.where(hidden, loss, torch.zeros_like(loss))  # visible entries are never read
    n_row = weight.sum(dim=1, keepdim=True)  # (B, 1)
    baseline = (loss * weight).sum(dim=1, keepdim=True) / n_row.clamp_min(1)  # (B, 1)
    n = weight.sum().clamp_min(1)
    recon = (loss * weight).sum() / n  # value: mean hidden-token loss
    surrogate = (soft_mask * (loss - baseline) * weight).sum() / n  # value 0 when soft == hard
    objective = -(recon + surrogate - surrogate.detach())
    if entropy_weight > 0:
        if logits is None:
            raise ValueError("entropy_weight > 0 needs the masker's logits")
        objective = objective + entropy_weight * (1.0 - normalized_entropy(logits, padding))
    if spread_weight > 0:
        if logits is None:
            raise ValueError("spread_weight > 0 needs the masker's logits")
        objective = objective + spread_weight * logit_spread(logits, padding)
    return objective


def logit_spread(logits: Tensor, padding: Tensor | None = None) -> Tensor:
    """Mean over real tokens of ``(logit - its row's mean over real tokens)²``; 0 for uniform logits."""
    real = torch.ones_like(logits, dtype=torch.bool) if padding is None else ~padding
    weight = real.to(logits.dtype)
    row_mean = (logits * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
    return (((logits - row_mean) ** 2) * weight).sum() / weight.sum().clamp_min(1)


def normalized_entropy(logits: Tensor, padding: Tensor | None = None) -> Tensor:
    """Mean over rows of ``H(softmax(logits over real tokens)) / log(n_real)``, in [0, 1] (1 = uniform)."""
    if padding is not None:
        logits = logits.masked_fill(padding, -math.inf)
    logp = torch.log_softmax(logits, dim=1)  # (B, L)
    p = logp.exp()
    entropy = -(p * logp.masked_fill(p == 0, 0.0)).sum(dim=1)  # (B,)
    n_real = torch.full_like(entropy, logits.shape[1]) if padding is None else (~padding).sum(dim=1).to(entropy)
    return (entropy / torch.log(n_real.clamp_min(2))).mean()


# -------------------------------------------------------------------------------------------- strategy


def learned_strategy(request: MaskRequest, generator: torch.Generator | None) -> LearnedMaskSample:
    """``learned``: Gumbel-top-k of a masker's logits (``request.scores``), ``options["temperature"]``."""
    if request.scores is None:
        raise ValueError("mask kind 'learned' needs the learned masker's logits (B, L) as scores")
    temperature = float(request.options.get("temperature", 1.0))
    return sample(request.scores.detach(), request.ratio, generator, temperature=temperature, padding=request.protected)
