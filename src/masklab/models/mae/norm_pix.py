"""The per-patch statistics a ``norm_pix_loss`` MAE's predictions are de-normalised with."""

from __future__ import annotations

import torch
from torch import Tensor

NORM_PIX_EPS = 1e-6  # MAE forward_loss: (var + 1e-6) ** 0.5


def norm_pix_stats(target: Tensor, masked: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation ``(B, L, 1)`` each of the patches ``target (B, L, P)`` (normalised pixels).

    With ``masked bool (B, L)`` (True = hidden) a hidden patch gets the average mean and standard deviation of
    its image's visible patches instead of its own, so nothing is read from a hidden patch's pixels; every
    image needs one visible patch (``ValueError`` otherwise).
    """
    mean = target.mean(dim=-1, keepdim=True)  # (B, L, 1)
    std = (target.var(dim=-1, keepdim=True) + NORM_PIX_EPS) ** 0.5
    if masked is None:
        return mean, std
    visible = (~masked)[..., None].to(target.dtype)  # (B, L, 1)
    count = visible.sum(dim=1, keepdim=True)
    if bool((count == 0).any()):
        raise ValueError("every patch of an image is hidden: no visible patch to take statistics from")
    hidden = masked[..., None]
    mean = torch.where(hidden, (mean * visible).sum(dim=1, keepdim=True) / count, mean)
    std = torch.where(hidden, (std * visible).sum(dim=1, keepdim=True) / count, std)
    return mean, std
