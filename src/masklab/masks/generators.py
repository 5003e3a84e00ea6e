"""Mask generators: decide which tokens are hidden from the encoder.

Every generator returns a :class:`MaskSample` whose ``masked`` is bool (B, L), True = hidden / to be
predicted; ``padding`` (bool (B, L), True = padded) positions are never hidden. All random numbers come from
the explicit CPU ``torch.Generator`` and are drawn on the CPU, so one seed replays the same mask on any
``device``; the result is moved to ``device`` (default: the device of the tensor argument, else CPU).

Ids (MAE's index bookkeeping, ``models_mae.py``) exist only when every row hides the same number of tokens:
``ids_keep`` long (B, V) lists the visible positions in the order the encoder sees them, ``ids_restore`` long
(B, L) puts ``cat(visible, hidden)`` back into position order. They are None when counts differ.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "MASK_GENERATORS",
    "MaskSample",
    "bernoulli_masking",
    "block_masking",
    "grid_masking",
    "ids_from_masked",
    "random_masking",
    "span_masking",
    "whole_word_masking",
]

_TRIES = 10  # BEiT: block placements tried per round before giving up


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


def _check_padding(padding: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    if padding is None:
        return None
    if not isinstance(padding, torch.Tensor) or padding.dtype != torch.bool or padding.shape != (batch, length):
        raise ValueError(f"padding must be a bool tensor ({batch}, {length}), got {_describe(padding)}")
    return padding


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
    padding: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """MAE random masking: each row hides exactly ``L - int(L * (1 - ratio))`` tokens.

    Without ``padding`` this is MAE ``models_mae.random_masking`` / HF ``ViTMAEEmbeddings.random_masking``
    step for step: the same ``noise`` float (B, L) gives the same ``masked`` (B, L), ``ids_keep`` (B, V)
    (ascending noise) and ``ids_restore`` (B, L). ``noise`` defaults to ``torch.rand(B, L, generator=...)``.

    With ``padding`` bool (B, L) (True = padded), padded positions are never hidden and each row hides
    ``n_real - int(n_real * (1 - ratio))`` of its real tokens (lowest noise kept). Ids are returned only if
    all rows hide the same count; encoder order is then kept real tokens by noise, padded positions, hidden
    tokens by noise (gather ``padding`` with ``ids_keep`` for the encoder's padding). All-False padding gives
    exactly MAE's ids.
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    padding = _check_padding(padding, batch, length)
    if noise is not None and (
        not isinstance(noise, torch.Tensor) or not noise.is_floating_point() or noise.shape != (batch, length)
    ):
        raise ValueError(f"noise must be a float tensor ({batch}, {length}), got {_describe(noise)}")
    device = _device(device, noise, padding)
    noise = (torch.rand(batch, length, generator=generator) if noise is None else noise).to(device)
    if padding is None:
        len_keep = int(length * (1 - ratio))
        ids_shuffle = torch.argsort(noise, dim=1)  # (B, L) small noise = keep
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
        masked = torch.ones(batch, length, dtype=torch.bool, device=device)
        masked[:, :len_keep] = False
        masked = torch.gather(masked, 1, ids_restore)  # (B, L) back to position order
        return MaskSample(masked, ids_shuffle[:, :len_keep], ids_restore)

    padding = padding.to(device)
    # Rank real tokens by noise; padded ones sort last, so real tokens take ranks 0 .. n_real - 1.
    rank = _invert(torch.argsort(noise.masked_fill(padding, math.inf), dim=1))  # (B, L)
    keep_table = torch.tensor([int(n * (1 - ratio)) for n in range(length + 1)], device=device)  # MAE's int()
    n_keep = keep_table[(~padding).sum(dim=1)]  # (B,)
    masked = ~padding & (rank >= n_keep[:, None])  # (B, L)
    counts = masked.sum(dim=1)  # (B,)
    if bool((counts != counts[0]).any()):
        return MaskSample(masked)
    positions = torch.arange(length, device=device).expand(batch, length)
    key = torch.where(padding, length + positions, torch.where(masked, 2 * length + rank, rank))  # (B, L)
    ids_shuffle = torch.argsort(key, dim=1)  # (B, L) distinct keys: no ties
    return MaskSample(masked, ids_shuffle[:, : length - int(counts[0])], _invert(ids_shuffle))


def bernoulli_masking(
    batch: int,
    length: int,
    p: float,
    *,
    generator: torch.Generator | None = None,
    padding: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """Hide each real token independently with probability ``p``; ``masked`` bool (B, L), True = hidden.

    Padded positions (``padding`` bool (B, L), True = padded) are never hidden. Counts vary by row, so ids are
    present only when all rows happen to hide the same count (always for B = 1).
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("p", p)
    _check_generator(generator)
    padding = _check_padding(padding, batch, length)
    device = _device(device, padding)
    masked = torch.rand(batch, length, generator=generator).to(device) < p  # (B, L)
    if padding is not None:
        masked &= ~padding.to(device)
    return _finish(masked, device)


def block_masking(
    batch: int,
    grid: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    min_block: int = 4,
    max_block: int | None = None,
    aspect: tuple[float, float] = (0.3, 1 / 0.3),
    exact: bool = True,
    device: torch.device | str | None = None,
) -> MaskSample:
    """BEiT block-wise masking (Bao et al. 2021, ``masking_generator.py``) on a (gh, gw) patch grid.

    Target per row: ``L - int(L * (1 - ratio))`` patches, L = gh * gw, flattened row-major (r * gw + c,
    patchify order). Each round tries up to 10 blocks: area ~ U[min_block, min(remaining, max_block or
    target)], aspect log-uniform in ``aspect``, h = round(sqrt(area * ar)), w = round(sqrt(area / ar)), random
    top/left; a block is accepted if it adds new patches without passing the target. A row stops at its
    target or after a round with no accepted block (BEiT's undershoot). ``exact=True`` tops each row up with
    uniformly random visible patches so all rows hide exactly the target. Returns ``masked`` bool (B, L),
    True = hidden. Rows run in lockstep: one batched numpy step per try.
    """
    _check_int("batch", batch, " (empty input)")
    gh, gw = _check_grid(grid)
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    _check_int("min_block", min_block)
    if max_block is not None and (not isinstance(max_block, numbers.Integral) or max_block < min_block):
        raise ValueError(f"max_block must be None or an int >= min_block={min_block}, got {max_block!r}")
    if not isinstance(aspect, (tuple, list)) or len(aspect) != 2 or not 0 < aspect[0] <= aspect[1]:
        raise ValueError(f"aspect must be (low, high) with 0 < low <= high, got {aspect!r}")
    length = gh * gw
    target = length - int(length * (1 - ratio))
    max_area = target if max_block is None else max_block
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    rows, cols = np.arange(gh), np.arange(gw)
    grid_masked = np.zeros((batch, gh, gw), dtype=bool)
    count = np.zeros(batch, dtype=np.int64)
    alive = np.full(batch, target > 0)
    while alive.any():
        draws = torch.rand(_TRIES, batch, 4, generator=generator, dtype=torch.float64).numpy()
        cap = np.minimum(target - count, max_area)  # (B,) BEiT's max_mask_patches
        placed = np.zeros(batch, dtype=bool)
        for draw in draws:  # (B, 4)
            idx = np.flatnonzero(alive & ~placed)
            if idx.size == 0:
                break
            u, row_cap = draw[idx], cap[idx]
            area = min_block + (row_cap - min_block) * u[:, 0]  # random.uniform(min_block, cap)
            ar = np.exp(log_lo + (log_hi - log_lo) * u[:, 1])
            h = np.rint(np.sqrt(area * ar)).astype(np.int64)  # rint = Python's round (half to even)
            w = np.rint(np.sqrt(area / ar)).astype(np.int64)
            top = np.floor(u[:, 2] * (gh - h + 1)).astype(np.int64)  # random.randint(0, gh - h)
            left = np.floor(u[:, 3] * (gw - w + 1)).astype(np.int64)
            in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (n, gh)
            in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (n, gw)
            block = in_rows[:, :, None] & in_cols[:, None, :]  # (n, gh, gw)
            new = (block & ~grid_masked[idx]).sum(axis=(1, 2))  # (n,)
            ok = (h < gh) & (w < gw) & (new > 0) & (new <= row_cap)  # BEiT's strict fit test
            grid_masked[idx[ok]] |= block[ok]
            count[idx[ok]] += new[ok]
            placed[idx[ok]] = True
        alive &= placed & (count < target)
    masked = torch.from_numpy(grid_masked.reshape(batch, length))  # (B, L)
    if not exact:
        return _finish(masked, _device(device))
    # Top up with the visible patches of lowest noise: a uniform draw without replacement.
    noise = torch.rand(batch, length, generator=generator).masked_fill(masked, math.inf)  # (B, L)
    rank = _invert(torch.argsort(noise, dim=1))  # (B, L)
    masked |= rank < torch.from_numpy(target - count)[:, None]
    masked = masked.to(_device(device))
    return MaskSample(masked, *ids_from_masked(masked))


def span_masking(
    batch: int,
    length: int,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    p: float = 0.2,
    max_span: int = 10,
    padding: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """SpanBERT span masking (Joshi et al. 2020, Sec. 3.1): hide contiguous spans until a budget is met.

    Each row hides exactly ``round(ratio * n_real)`` real tokens. Span lengths follow Geometric(p) truncated
    to [1, max_span] and renormalised, as SpanBERT's code does (mean 3.8 for p = 0.2, max_span = 10). A span
    starts at a uniformly random visible real token (SpanBERT redraws starts that are already hidden), runs
    right, stops before padding (bool (B, L), True = padded, never hidden) and the last span is cut to hit the
    budget. Returns ``masked`` bool (B, L), True = hidden. Rows run in lockstep: one numpy step per span.
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"p must be a number in (0, 1] (Geometric success probability), got {p!r}")
    _check_int("max_span", max_span)
    padding = _check_padding(padding, batch, length)
    device = _device(device, padding)
    real = np.ones((batch, length), dtype=bool) if padding is None else ~padding.cpu().numpy()  # (B, L)
    budget = np.rint(ratio * real.sum(axis=1)).astype(np.int64)  # (B,) rint = Python's round
    probs = p * (1 - p) ** np.arange(max_span)  # P(span = 1 .. max_span), before renormalising
    cdf = np.cumsum(probs) / probs.sum()
    cdf[-1] = 1.0
    run_id = np.cumsum(~real, axis=1)  # (B, L) equal within a run of real tokens, so spans stop at padding
    positions = np.arange(length)
    masked = np.zeros((batch, length), dtype=bool)
    count = np.zeros(batch, dtype=np.int64)
    while (todo := np.flatnonzero(count < budget)).size:
        u = torch.rand(batch, 2, generator=generator, dtype=torch.float64).numpy()[todo]  # (n, 2)
        span = np.searchsorted(cdf, u[:, 0], side="right") + 1  # (n,) inverse CDF
        free = real[todo] & ~masked[todo]  # (n, L) candidate starts
        k = np.floor(u[:, 1] * free.sum(axis=1)).astype(np.int64)  # start = k-th free token
        start = np.argmax(np.cumsum(free, axis=1) > k[:, None], axis=1)  # (n,)
        same_run = run_id[todo] == run_id[todo, start][:, None]  # (n, L)
        new = free & same_run & (positions >= start[:, None]) & (positions < (start + span)[:, None])
        new &= np.cumsum(new, axis=1) <= (budget - count)[todo][:, None]  # cut the final span
        masked[todo] |= new
        count[todo] += new.sum(axis=1)
    return _finish(torch.from_numpy(masked), device)


def whole_word_masking(
    word_ids: torch.Tensor,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """BERT whole-word masking: hide all pieces of randomly chosen words.

    ``word_ids`` long (B, L): pieces of one word share an id >= 0 (e.g. a fast tokenizer's ``word_ids()``);
    negative ids (-1: special tokens, padding) are never hidden. Words are visited in random order and taken
    whole unless they would push the row past ``max(1, round(ratio * n_word_tokens))`` (BERT's
    ``create_pretraining_data.py``); if ratio > 0 and no word fits, the first visited word is taken anyway, so
    every row with words hides at least one. Returns ``masked`` bool (B, L), True = hidden.
    """
    if not isinstance(word_ids, torch.Tensor) or word_ids.dim() != 2:
        raise ValueError(f"word_ids must be an integer tensor (B, L), got {_describe(word_ids)}")
    if word_ids.is_floating_point() or word_ids.is_complex() or word_ids.dtype == torch.bool:
        raise ValueError(f"word_ids must have an integer dtype, got {_describe(word_ids)}")
    if word_ids.numel() == 0:
        raise ValueError(f"word_ids must be non-empty (empty input), got {_describe(word_ids)}")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    batch, length = word_ids.shape
    device = _device(device, word_ids)
    noise = torch.rand(batch, length, generator=generator, dtype=torch.float64).numpy()  # word order
    ids = word_ids.cpu().numpy().astype(np.int64)
    # Sort each row by id (stable) so a word's pieces are adjacent, its first piece first.
    order = np.argsort(ids, axis=1, kind="stable")  # (B, L)
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    in_word = sorted_ids >= 0
    first = in_word.copy()
    first[:, 1:] &= sorted_ids[:, 1:] != sorted_ids[:, :-1]  # (B, L) first piece of each word
    word = np.cumsum(first, axis=1) - 1  # (B, L) word slot in sorted order
    flat = (np.arange(batch)[:, None] * length + word)[in_word]
    sizes = np.bincount(flat, minlength=batch * length).reshape(batch, length)  # (B, W) pieces per word
    priority = np.full((batch, length), np.inf)
    priority[np.nonzero(first)[0], word[first]] = np.take_along_axis(noise, order, axis=1)[first]
    visit = np.argsort(priority, axis=1, kind="stable")  # (B, W) word slots in random order, empty slots last
    visit_size = np.take_along_axis(sizes, visit, axis=1)  # (B, W)
    n_tokens = in_word.sum(axis=1)
    target = np.where(ratio > 0, np.maximum(1, np.rint(ratio * n_tokens)), 0).astype(np.int64)  # (B,)
    total = np.zeros(batch, dtype=np.int64)
    take = np.zeros((batch, length), dtype=bool)  # (B, W) in visiting order
    for slot in range(int(first.sum(axis=1).max(initial=0))):
        if (total >= target).all():
            break
        size = visit_size[:, slot]
        take[:, slot] = (size > 0) & (total + size <= target)  # BERT: skip a word that would overshoot
        total += size * take[:, slot]
    take[:, 0] |= (total == 0) & (target > 0) & (n_tokens > 0)
    chosen = np.zeros((batch, length), dtype=bool)
    np.put_along_axis(chosen, visit, take, axis=1)  # (B, W) by word slot
    hidden_sorted = in_word & np.take_along_axis(chosen, np.maximum(word, 0), axis=1)
    masked = np.zeros((batch, length), dtype=bool)
    np.put_along_axis(masked, order, hidden_sorted, axis=1)  # back to position order
    return _finish(torch.from_numpy(masked), device)


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


MASK_GENERATORS: dict[str, Callable[..., MaskSample]] = {
    "random": random_masking,
    "bernoulli": bernoulli_masking,
    "block": block_masking,
    "span": span_masking,
    "grid": grid_masking,
}
