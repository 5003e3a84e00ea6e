"""What a trained :class:`~masklab.models.series.model.PatchTST` answers by hiding patches at inference:
forecasts (hide the future), imputations (hide the patches with missing steps) and anomaly scores (hide every
patch once, score its reconstruction). Pure tensor functions, deterministic, no gradients.

Shape legend: ``B`` batch, ``T`` steps, ``H`` horizon, ``C`` channels, ``L`` patches, ``P`` steps per patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from masklab.data.series import SeriesBatch
from masklab.models.series.model import PatchTST
from masklab.tokenizers.series import unpatchify


@torch.no_grad()
def forecast(model: PatchTST, batch: SeriesBatch, horizon: int) -> Tensor:
    """The next ``horizon`` steps after each series' own end, ``(B, H, C)`` in the data's units.

    Each series is extended by ``horizon`` unobserved steps; every patch holding one of them is hidden (the
    tail masking the model may have been pretrained with) and the reconstruction is read off."""
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    B, T, C = batch.values.shape
    lengths = (~batch.padding).sum(dim=1)  # (B,)
    total = int((lengths + horizon).max())
    pos = torch.arange(total, device=lengths.device)[None, :]  # (1, T')
    values = batch.values.new_zeros(B, total, C)
    observed = torch.zeros(B, total, C, dtype=torch.bool, device=values.device)
    keep = min(T, total)
    values[:, :keep] = batch.values[:, :keep]
    observed[:, :keep] = batch.observed[:, :keep] & ~batch.padding[:, :keep, None]
    future = (pos >= lengths[:, None]) & (pos < (lengths + horizon)[:, None])  # (B, T')
    extended = SeriesBatch(values, pos >= (lengths + horizon)[:, None], observed)
    masked = model.steps_to_patches(future[..., None].expand(-1, -1, C))  # (B, C, L)
    recon = model.reconstruct(extended, masked)  # (B, T', C)
    index = (lengths[:, None] + torch.arange(horizon, device=lengths.device)[None, :])[..., None]  # (B, H, 1)
    return torch.gather(recon, 1, index.expand(-1, -1, C))


@torch.no_grad()
def impute(model: PatchTST, batch: SeriesBatch) -> Tensor:
    """``values`` with every real unobserved step filled, ``(B, T, C)`` (padded steps are NaN)."""
    missing = ~batch.observed & ~batch.padding[..., None]  # (B, T, C)
    recon = model.reconstruct(batch, model.steps_to_patches(missing))
    out = torch.where(batch.observed, batch.values, recon)
    return out.masked_fill(batch.padding[..., None], float("nan"))


@dataclass(frozen=True)
class AnomalyScores:
    """``per_step`` float (B, T): squared reconstruction error of each step when its patch was hidden, in
    normalised units, averaged over observed channels (NaN where nothing is observed or padded);
    ``per_series`` float (B,): its mean over the scored steps."""

    per_step: Tensor
    per_series: Tensor


@torch.no_grad()
def anomaly_scores(model: PatchTST, batch: SeriesBatch, rounds: int | None = None) -> AnomalyScores:
    """Hide each patch exactly once (patch ``l`` in round ``l % rounds``; default ``ceil(1 / mask_ratio)``
    rounds, so each round hides about the share the model was trained on) and score its reconstruction."""
    rounds = rounds or math.ceil(1 / model.config.mask_ratio)
    inputs = model.prepare(batch)
    B, C, L, _ = inputs.patches.shape
    which = torch.arange(L, device=inputs.patches.device) % rounds  # (L,)
    err = torch.zeros_like(inputs.patches)
    for r in range(rounds):
        masked = (which == r).expand(B, C, L) & ~inputs.padding[:, None]
        normed = model.prepare(batch, masked) if model.config.norm_visible else inputs
        pred = model.predict(normed, masked)
        err = torch.where(masked[..., None], (pred - normed.patches) ** 2, err)
    per_step_c = unpatchify(err, inputs.length, model.config.stride, inputs.padding)  # (B, T, C)
    seen = batch.observed & ~batch.padding[..., None]
    count = seen.sum(dim=-1)  # (B, T)
    per_step = torch.where(seen, per_step_c, 0.0).sum(dim=-1) / count.clamp_min(1)
    per_step = per_step.masked_fill(count == 0, float("nan"))
    scored = count > 0
    per_series = torch.where(scored, per_step, 0.0).sum(dim=1) / scored.sum(dim=1).clamp_min(1)
    return AnomalyScores(per_step, per_series)
