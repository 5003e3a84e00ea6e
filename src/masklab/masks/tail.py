"""Tail (forecast) masking: hide the last real tokens of every row.

PatchTST's forecast pretraining (Nie et al. 2023; HF ``forecast_masking``) hides the last ``count`` patches so
the model learns to continue a series. Rows of different lengths hide their own last real tokens: padded
positions (``padding`` bool (B, L), True = padded) are never hidden and do not count as the tail.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import torch

from masklab.masks.generators import MaskSample, _describe, _device, _finish

if TYPE_CHECKING:  # the registry imports this module
    from masklab.masks.strategies import MaskRequest


def tail_masking(
    batch: int,
    length: int,
    count: int,
    *,
    padding: torch.Tensor | None = None,
    keep_first: int = 1,
    device: torch.device | str | None = None,
) -> MaskSample:
    """``masked`` bool (B, L), True = hidden: the last ``count`` real positions of each row.

    ``keep_first``: a row always keeps at least this many real positions visible (a row with ``n`` real
    tokens hides ``min(count, n - keep_first)``), so a short series still has context to forecast from.
    Deterministic: no generator. Ids come back only when every row hides the same number.
    """
    for name, value, low in (("batch", batch, 1), ("length", length, 1), ("count", count, 0),
                             ("keep_first", keep_first, 0)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if padding is not None and (
        not isinstance(padding, torch.Tensor) or padding.dtype != torch.bool or padding.shape != (batch, length)
    ):
        raise ValueError(f"padding must be a bool tensor ({batch}, {length}), got {_describe(padding)}")
    device = _device(device, padding)
    real = torch.ones(batch, length, dtype=torch.bool) if padding is None else ~padding.cpu()  # (B, L)
    n_real = real.sum(dim=1, keepdim=True)  # (B, 1)
    hide = torch.clamp(torch.minimum(torch.full_like(n_real, count), n_real - keep_first), min=0)  # (B, 1)
    # Rank of each real position counted from the end: the last real token has rank 0.
    from_end = n_real - real.long().cumsum(dim=1)  # (B, L)
    masked = real & (from_end < hide)
    return _finish(masked, device)


def tail_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``tail``: :func:`tail_masking` of ``options["count"]`` positions (default: the ``L - int(L (1 - ratio))``
    that ``random`` hides); ``protected`` rows are the padding (never hidden, not part of the tail);
    ``options["keep_first"]`` (default 1). Deterministic: ``generator`` is not used."""
    r = request
    count = r.options.get("count", r.length - int(r.length * (1 - r.ratio)))
    keep_first = r.options.get("keep_first", 1)
    return tail_masking(r.batch, r.length, count, padding=r.protected, keep_first=keep_first, device=r.device)
