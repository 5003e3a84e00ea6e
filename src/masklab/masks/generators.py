"""Mask generators: decide which tokens are hidden from the encoder.

Every generator returns a :class:`MaskSample` whose ``masked`` is bool (B, L), True = hidden / to be
predicted; ``protected`` (bool (B, L), True = never hidden: padding, special tokens, missing cells)
positions are never hidden. All random numbers come from
the explicit CPU ``torch.Generator`` and are drawn on the CPU, so one seed replays the same mask on any
``device``; the result is moved to ``device`` (default: the device of the tensor argument, else CPU).

Ids (MAE's index bookkeeping, ``models_mae.py``) exist only when every row hides the same number of tokens:
``ids_keep`` long (B, V) lists the visible positions in the order the encoder sees them, ``ids_restore`` long
(B, L) puts ``cat(visible, hidden)`` back into position order. They are None when counts differ.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the registry imports this module
    from masklab.masks.strategies import MaskRequest

__all__ = [
    "MaskSample",
    "bernoulli_masking",
    "grid_cell",
    "grid_masking",
    "ids_from_masked",
    "jittered_masking",
    "random_masking",
]


@dataclass(frozen=True)
class MaskSample:
    """A batch of masks.

    masked: bool (B, L), True = hidden / to be predicted.
    ids_keep: long (B, V) visible positions in encoder order; None when rows hide different counts.
    ids_restore: long (B, L), gathering ``cat(visible, hidden)`` with it gives position order; None likewise.
    """

    masked: torch.Tensor
    ids_keep: torch.Tensor | None = None
    ids_restore: torch.Tensor | None = None

    @property
    def num_masked(self) -> torch.Tensor:
        """long (B,): hidden tokens per row."""
        return self.masked.sum(dim=1)


# ---------------------------------------------------------------- helpers


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return repr(value)


def _check_int(name: str, value: int, why: str = "") -> None:
    if isinstance(value, torch.Tensor) and value.ndim == 0 and torch.jit.is_tracing():
        return  # torch.jit.trace records sizes as 0-d tensors; the traced values are the real sizes
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1{why}, got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_generator(generator: torch.Generator | None) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {generator!r}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator (draws are on CPU), got {generator.device}")


def _check_grid(grid: tuple[int, int]) -> tuple[int, int]:
    ok = isinstance(grid, (tuple, list)) and len(grid) == 2
    if not ok or any(isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < 1 for g in grid):
        raise ValueError(f"grid must be two positive ints (gh, gw), got {grid!r}")
    return int(grid[0]), int(grid[1])


def _check_protected(protected: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    if protected is None:
        return None
    if not isinstance(protected, torch.Tensor) or protected.dtype != torch.bool or protected.shape != (batch, length):
        raise ValueError(f"protected must be a bool tensor ({batch}, {length}), got {_describe(protected)}")
    return protected


def _device(device: torch.device | str | None, *tensors: torch.Tensor | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next((t.device for t in tensors if t is not None), torch.device("cpu"))


def _invert(perm: torch.Tensor) -> torch.Tensor:
    """Inverse of each row permutation of ``perm`` (B, L): equals ``argsort(perm, dim=1)``, without a sort."""
    positions = torch.arange(perm.shape[1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(1, perm, positions)


def ids_from_masked(masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids_keep (B, V), ids_restore (B, L))`` for bool ``masked`` (B, L), True = hidden.

    Encoder order is visible positions ascending, then hidden positions ascending. Raises ValueError unless
    every row hides the same number of tokens.
    """
    if not isinstance(masked, torch.Tensor) or masked.dtype != torch.bool or masked.dim() != 2:
        raise ValueError(f"masked must be a bool tensor (B, L), got {_describe(masked)}")
    counts = masked.sum(dim=1)  # (B,)
    if masked.shape[0] and bool((counts != counts[0]).any()):
        raise ValueError(f"masked rows hide different counts {counts.tolist()}; ids need equal counts")
    ids_shuffle = torch.sort(masked.to(torch.uint8), dim=1, stable=True).indices  # (B, L) visible first
    n_visible = masked.shape[1] - int(counts[0]) if masked.shape[0] else masked.shape[1]
    return ids_shuffle[:, :n_visible], _invert(ids_shuffle)


def _finish(masked: torch.Tensor, device: torch.device) -> MaskSample:
    """Wrap ``masked`` (B, L); ids only when every row hides the same count."""
    masked = masked.to(device)
    counts = masked.sum(dim=1)  # (B,)
    if bool((counts != counts[0]).any()):
        return MaskSample(masked)
    return MaskSample(masked, *ids_from_masked(masked))


# ---------------------------------------------------------------- generators


def random_masking(
    batch: int,
    length: int,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    protected: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """MAE random masking: each row hides exactly ``L - int(L * (1 - ratio))`` tokens.

    Without ``protected`` this is MAE ``models_mae.random_masking`` / HF ``ViTMAEEmbeddings.random_masking``
    step for step: the same ``noise`` float (B, L) gives the same ``masked`` (B, L), ``ids_keep`` (B, V)
    (ascending noise) and ``ids_restore`` (B, L). ``noise`` defaults to ``torch.rand(B, L, generator=...)``.

    With ``protected`` bool (B, L) (True = never hidden: padding, special tokens, missing cells), each row
    hides ``n_free - int(n_free * (1 - ratio))`` of its unprotected tokens (lowest noise kept). Ids are returned
    only if all rows hide the same count; encoder order is then kept free tokens by noise, protected positions,
    hidden tokens by noise. All-False ``protected`` gives exactly MAE's ids.
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    protected = _check_protected(protected, batch, length)
    if noise is not None and (
        not isinstance(noise, torch.Tensor) or not noise.is_floating_point() or noise.shape != (batch, length)
    ):
        raise ValueError(f"noise must be a float tensor ({batch}, {length}), got {_describe(noise)}")
    device = _device(device, noise, protected)
    noise = (torch.rand(batch, length, generator=generator) if noise is None else noise).to(device)
    if protected is None:
        len_keep = int(length * (1 - ratio))
        ids_shuffle = torch.argsort(noise, dim=1)  # (B, L) small noise = keep
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
        masked = torch.ones(batch, length, dtype=torch.bool, device=device)
        masked[:, :len_keep] = False
        masked = torch.gather(masked, 1, ids_restore)  # (B, L) back to position order
        return MaskSample(masked, ids_shuffle[:, :len_keep], ids_restore)

    protected = protected.to(device)
    # Rank real tokens by noise; padded ones sort last, so real tokens take ranks 0 .. n_real - 1.
    rank = _invert(torch.argsort(noise.masked_fill(protected, math.inf), dim=1))  # (B, L)
    keep_table = torch.tensor([int(n * (1 - ratio)) for n in range(length + 1)], device=device)  # MAE's int()
    n_keep = keep_table[(~protected).sum(dim=1)]  # (B,)
    masked = ~protected & (rank >= n_keep[:, None])  # (B, L)
    counts = masked.sum(dim=1)  # (B,)
    if bool((counts != counts[0]).any()):
        return MaskSample(masked)
    positions = torch.arange(length, device=device).expand(batch, length)
    key = torch.where(protected, length + positions, torch.where(masked, 2 * length + rank, rank))  # (B, L)
    ids_shuffle = torch.argsort(key, dim=1)  # (B, L) distinct keys: no ties
    return MaskSample(masked, ids_shuffle[:, : length - int(counts[0])], _invert(ids_shuffle))


def bernoulli_masking(
    batch: int,
    length: int,
    p: float,
    *,
    generator: torch.Generator | None = None,
    protected: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """Hide each real token independently with probability ``p``; ``masked`` bool (B, L), True = hidden.

    ``protected`` positions (bool (B, L), True = never hidden) are never hidden. Counts vary by row, so ids are
    present only when all rows happen to hide the same count (always for B = 1).
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("p", p)
    _check_generator(generator)
    protected = _check_protected(protected, batch, length)
    device = _device(device, protected)
    masked = torch.rand(batch, length, generator=generator).to(device) < p  # (B, L)
    if protected is not None:
        masked &= ~protected.to(device)
    return _finish(masked, device)


def grid_masking(
    batch: int,
    grid: tuple[int, int],
    cell: int = 2,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """Structured masking: one patch per ``cell`` x ``cell`` square stays visible (ratio 1 - 1 / cell**2).

    The visible offset (dr, dc) inside the square is drawn per row and shared by all squares of the image.
    ``masked`` bool (B, L), L = gh * gw row-major, True = hidden; counts are equal so ids are always present.
    """
    _check_int("batch", batch, " (empty input)")
    gh, gw = _check_grid(grid)
    _check_generator(generator)
    _check_int("cell", cell)
    if gh % cell or gw % cell:
        raise ValueError(f"grid {grid!r} must be divisible by cell={cell}")
    device = _device(device)
    offset = torch.randint(0, cell, (batch, 2), generator=generator).to(device)  # (B, 2) visible (dr, dc)
    on_row = (torch.arange(gh, device=device) % cell)[None, :] == offset[:, :1]  # (B, gh)
    on_col = (torch.arange(gw, device=device) % cell)[None, :] == offset[:, 1:]  # (B, gw)
    masked = ~(on_row[:, :, None] & on_col[:, None, :]).reshape(batch, gh * gw)  # (B, L)
    return MaskSample(masked, *ids_from_masked(masked))


def jittered_masking(
    batch: int,
    length: int,
    ratio: float,
    jitter: float,
    *,
    generator: torch.Generator | None = None,
    protected: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """Hide a share of each row's unprotected tokens drawn per row from ``U(ratio - jitter, ratio + jitter)``:
    ``round(share * n_free)`` tokens, at least one when the row has any (the table model's training mask).

    ``protected`` bool (B, L) True = never hidden (a table's missing cells). Counts vary by row.
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_generator(generator)
    if not 0 <= ratio - jitter <= ratio + jitter <= 1:
        raise ValueError(f"ratio ± jitter must stay within [0, 1], got {ratio} ± {jitter}")
    protected = _check_protected(protected, batch, length)
    device = _device(device, protected)
    fixed = torch.zeros(batch, length, dtype=torch.bool) if protected is None else protected.cpu()
    share = ratio - jitter + 2 * jitter * torch.rand(batch, 1, generator=generator)  # (B, 1)
    noise = torch.rand(batch, length, generator=generator).masked_fill(fixed, 2.0)  # protected last
    rank = noise.argsort(dim=1).argsort(dim=1)  # (B, L) free tokens take ranks 0 .. n_free - 1
    n_free = (~fixed).sum(dim=1, keepdim=True)  # (B, 1)
    count = torch.round(share * n_free).long().clamp(min=(n_free > 0).long())  # >= 1 when possible
    return MaskSample((rank < count).to(device))


def grid_cell(ratio: float, grid: tuple[int, int]) -> int:
    """Side ``k`` of the square that keeps one visible patch under grid masking, from ``ratio = 1 - 1/k²``
    within ``1e-6`` (so ``1 - 1/9`` passes, ``0.889`` does not); ``ValueError`` unless the ratio has that form
    and ``k`` divides both sides of ``grid``. The error lists the ratios ``grid`` accepts, in full digits."""
    gh, gw = grid
    accepted = ", ".join(f"{1 - 1 / k**2!r} (k={k})" for k in range(2, min(gh, gw) + 1) if not gh % k and not gw % k)
    accepted = f"on {gh}x{gw}: {accepted}" if accepted else f"none: no k >= 2 divides both sides of {gh}x{gw}"
    cell = round((1.0 - ratio) ** -0.5) if ratio < 1 else 0
    if cell < 2 or abs(1.0 - 1.0 / cell**2 - ratio) > _GRID_TOLERANCE:
        raise ValueError(
            f"grid masking needs mask ratio 1 - 1/k² within {_GRID_TOLERANCE!r}, k >= 2 dividing both sides of "
            f"the patch grid (accepted {accepted}), got {ratio!r}"
        )
    if gh % cell or gw % cell:
        raise ValueError(
            f"grid masking with {cell}x{cell} cells needs a patch grid divisible by {cell}, got {gh}x{gw} "
            f"(accepted {accepted})"
        )
    return cell


_GRID_TOLERANCE = 1e-6  # grid_cell: how far a ratio may be from 1 - 1/k² (float spellings of 1 - 1/9)


# ---------------------------------------------------------------- strategies (see masklab.masks.strategies)


def random_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``random``: :func:`random_masking`, or :func:`jittered_masking` when ``options["jitter"] > 0``."""
    r = request
    jitter = float(r.options.get("jitter", 0.0))
    if jitter > 0:
        return jittered_masking(
            r.batch, r.length, r.ratio, jitter, generator=generator, protected=r.protected, device=r.device
        )
    return random_masking(
        r.batch, r.length, r.ratio, generator=generator, noise=r.noise, protected=r.protected, device=r.device
    )


def bernoulli_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``bernoulli``: :func:`bernoulli_masking` with probability ``ratio``."""
    r = request
    return bernoulli_masking(r.batch, r.length, r.ratio, generator=generator, protected=r.protected, device=r.device)


def grid_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``grid``: :func:`grid_masking` with the cell that gives ``ratio`` (see :func:`grid_cell`)."""
    if request.grid is None:
        raise ValueError("mask kind 'grid' needs the patch grid (gh, gw)")
    cell = grid_cell(request.ratio, request.grid)
    return grid_masking(request.batch, request.grid, cell, generator=generator, device=request.device)
