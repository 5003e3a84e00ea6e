"""Mask generators that hide contiguous regions: BEiT blocks on a patch grid, SpanBERT spans (of tokens or of
whole words), whole words.

Same contract as :mod:`masklab.masks.generators`: a :class:`~masklab.masks.generators.MaskSample` whose
``masked`` is bool (B, L), True = hidden; ``protected`` (bool (B, L), True = never hidden) positions are never
hidden; every random number comes from the explicit CPU ``torch.Generator``. The bookkeeping runs in numpy with
all rows in lockstep.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING

import numpy as np
import torch

from masklab.masks.generators import (
    MaskSample,
    _check_fraction,
    _check_generator,
    _check_grid,
    _check_int,
    _check_protected,
    _describe,
    _device,
    _finish,
    _invert,
    ids_from_masked,
)

if TYPE_CHECKING:  # the registry imports this module
    from masklab.masks.strategies import MaskRequest

__all__ = ["block_masking", "span_masking", "whole_word_masking", "word_span_masking"]

_TRIES = 10  # BEiT: block placements tried per round before giving up


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

    ``min_block``: BEiT uses ``min_num_patches=16`` on its 14x14 grid (224 px, 16 px patches), 8% of the grid.
    masklab's small presets have 4x4, 7x7 and 8x8 grids: there 16 patches is the whole 4x4 grid (BEiT's fit
    test, a block narrower and shorter than the grid, then accepts nothing), a third of 7x7 and most of a
    0.4 target (20 of 49), so few blocks fit and the exact top-up fills the rest with scattered patches. The
    default 4 keeps the smallest block at about BEiT's share of a 7x7 grid (4/49); pass 16 for BEiT on 14x14.
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
    protected: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> MaskSample:
    """Span masking in *tokens* (SpanBERT's lengths, Joshi et al. 2020, Sec. 3.1, on subword tokens).

    Each row hides exactly ``round(ratio * n_real)`` real tokens (a row of <= 3 tokens at 0.15 hides none).
    Span lengths, in tokens, follow Geometric(p) truncated to [1, max_span] and renormalised, as SpanBERT's code
    does (mean 3.8 for p = 0.2, max_span = 10). A span starts at a uniformly random visible real token
    (SpanBERT redraws starts that are already hidden), runs right, stops before a protected position (bool
    (B, L), True = never hidden) and the last span is cut to hit the budget, so a span may cut through a
    word. SpanBERT itself counts spans in whole words: :func:`word_span_masking`. This is masklab's original
    ``span`` (MLM configs saved before ``span_unit``, other models' ``span``). Returns ``masked`` bool (B, L),
    True = hidden. Rows run in lockstep: one numpy step per span.
    """
    _check_int("batch", batch, " (empty input)")
    _check_int("length", length, " (empty input)")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    _check_span_shape(p, max_span)
    protected = _check_protected(protected, batch, length)
    device = _device(device, protected)
    real = np.ones((batch, length), dtype=bool) if protected is None else ~protected.cpu().numpy()  # (B, L)
    budget = np.rint(ratio * real.sum(axis=1)).astype(np.int64)  # (B,) rint = Python's round
    cdf = _span_cdf(p, max_span)
    run_id = np.cumsum(~real, axis=1)  # (B, L) equal within a run of real tokens, so spans stop at protected
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


def word_span_masking(
    word_ids: torch.Tensor,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    p: float = 0.2,
    max_span: int = 10,
    device: torch.device | str | None = None,
) -> MaskSample:
    """SpanBERT span masking in whole words (Joshi et al. 2020, Sec. 3.1; its fairseq ``PairWithSpanMasking``).

    ``word_ids`` long (B, L): a word is a run of adjacent positions sharing an id >= 0 (a fast tokenizer's
    ``word_ids()``; a character tokenizer's characters are one-piece words); negative ids (-1: special tokens,
    padding) are never hidden and end a span. Each row's budget is ``max(1, round(ratio * n_real))`` tokens
    (0 for a row without words or for ratio 0), n_real = its positions with id >= 0. A span's length, in
    *words*, follows Geometric(p) truncated to [1, max_span] and renormalised (mean 3.8 words for p = 0.2,
    max_span = 10); it starts at a uniformly random not-yet-hidden word (SpanBERT picks a random token and
    moves to its word's start, favouring long words), covers the next words up to the span length (already
    hidden ones count but add nothing) and stops before a negative id. Words are hidden whole (SpanBERT's
    code cuts the last word at the budget instead): the row stops at the word that crosses its budget, taken
    if that ends nearer the budget than stopping before it (ties and a row's first word: taken), so a row
    hides its budget give or take half its longest word, and the budget on average. Returns ``masked`` bool
    (B, L), True = hidden. Rows run in lockstep: one numpy step per span.
    """
    if not isinstance(word_ids, torch.Tensor) or word_ids.dim() != 2 or word_ids.numel() == 0:
        raise ValueError(f"word_ids must be a non-empty integer tensor (B, L), got {_describe(word_ids)}")
    if word_ids.is_floating_point() or word_ids.is_complex() or word_ids.dtype == torch.bool:
        raise ValueError(f"word_ids must have an integer dtype, got {_describe(word_ids)}")
    _check_fraction("ratio", ratio)
    _check_generator(generator)
    _check_span_shape(p, max_span)
    batch, length = word_ids.shape
    device = _device(device, word_ids)
    ids = word_ids.cpu().numpy().astype(np.int64)  # (B, L)
    real = ids >= 0
    prev = np.pad(ids, ((0, 0), (1, 0)), constant_values=-1)[:, :-1]  # (B, L) the id one position left
    first = real & (ids != prev)  # (B, L) first piece of each word
    word = np.cumsum(first, axis=1) - 1  # (B, L) word index, position order
    n_words = first.sum(axis=1)  # (B,)
    width = max(int(n_words.max(initial=0)), 1)
    rows = np.arange(batch)[:, None]
    size = np.zeros((batch, width), dtype=np.int64)  # (B, W) pieces per word
    np.add.at(size, (np.broadcast_to(rows, (batch, length))[real], word[real]), 1)
    group = np.zeros((batch, width), dtype=np.int64)  # (B, W) words with no negative id between them share one
    group[np.nonzero(first)[0], word[first]] = np.cumsum(~real, axis=1)[first]
    exists = np.arange(width)[None, :] < n_words[:, None]  # (B, W)
    n_real = real.sum(axis=1)
    budget = np.where((n_real > 0) & (ratio > 0), np.maximum(1, np.rint(ratio * n_real)), 0).astype(np.int64)
    cdf = _span_cdf(p, max_span)
    slots = np.arange(width)
    hidden = np.zeros((batch, width), dtype=bool)  # (B, W)
    count = np.zeros(batch, dtype=np.int64)
    short = np.zeros(batch, dtype=bool)  # (B,) stopped a word short of the budget (the nearer count)
    while (todo := np.flatnonzero((count < budget) & ~short)).size:
        u = torch.rand(batch, 2, generator=generator, dtype=torch.float64).numpy()[todo]  # (n, 2)
        span = np.searchsorted(cdf, u[:, 0], side="right") + 1  # (n,) words, inverse CDF
        free = exists[todo] & ~hidden[todo]  # (n, W) candidate start words
        k = np.floor(u[:, 1] * free.sum(axis=1)).astype(np.int64)  # start = k-th free word
        start = np.argmax(np.cumsum(free, axis=1) > k[:, None], axis=1)  # (n,)
        same_group = group[todo] == group[todo, start][:, None]  # (n, W)
        new = free & same_group & (slots >= start[:, None]) & (slots < (start + span)[:, None])
        added = np.where(new, size[todo], 0)  # (n, W)
        before = count[todo][:, None] + np.cumsum(added, axis=1) - added  # (n, W) hidden before each word
        need = budget[todo][:, None]
        new &= before < need  # stop once the budget is met
        # The word that crosses the budget is taken if that ends nearer the budget than stopping before it
        # (ties: taken; a row's first word always is): |count - budget| <= half a word.
        crossing = new & (before + added > need)  # (n, W)
        dropped = crossing & (before + added - need > need - before) & (before > 0)
        new &= ~dropped
        short[todo] |= dropped.any(axis=1)
        hidden[todo] |= new
        count[todo] += np.where(new, size[todo], 0).sum(axis=1)
    masked = real & np.take_along_axis(hidden, np.maximum(word, 0), axis=1)  # (B, L)
    return _finish(torch.from_numpy(masked), device)


def _check_span_shape(p: float, max_span: int) -> None:
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 < p <= 1:
        raise ValueError(f"p must be a number in (0, 1] (Geometric success probability), got {p!r}")
    _check_int("max_span", max_span)


def _span_cdf(p: float, max_span: int) -> np.ndarray:
    """CDF (max_span,) of Geometric(p) truncated to [1, max_span] and renormalised (SpanBERT's ``len_distrib``)."""
    probs = p * (1 - p) ** np.arange(max_span)  # P(span = 1 .. max_span), before renormalising
    cdf = np.cumsum(probs) / probs.sum()
    cdf[-1] = 1.0
    return cdf


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


# ---------------------------------------------------------------- strategies (see masklab.masks.strategies)


def block_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``block``: :func:`block_masking` on the request's patch grid (exact count per row)."""
    if request.grid is None:
        raise ValueError("mask kind 'block' needs the patch grid (gh, gw)")
    return block_masking(request.batch, request.grid, request.ratio, generator=generator, device=request.device)


def span_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``span``; ``options``: ``span_p`` (default 0.2), ``span_max`` (default 10), ``span_unit``:

    ``"token"`` (the default, masklab's original ``span``): :func:`span_masking` on tokens, ``word_ids``
    ignored; ``"word"`` (SpanBERT; MLM configs since ``span_unit``): :func:`word_span_masking` on ``word_ids``
    with protected pieces left out, or, without ``word_ids`` (e.g. a batch of a character model that has
    none), on tokens as one-piece words.
    """
    r = request
    p, max_span = float(r.options.get("span_p", 0.2)), int(r.options.get("span_max", 10))
    unit = r.options.get("span_unit", "token")
    if unit == "token":
        return span_masking(
            r.batch, r.length, r.ratio, generator=generator, p=p, max_span=max_span, protected=r.protected,
            device=r.device,
        )  # fmt: skip
    if unit != "word":
        raise ValueError(f"options['span_unit'] must be 'word' or 'token', got {unit!r}")
    words = torch.arange(r.length).expand(r.batch, r.length) if r.word_ids is None else r.word_ids.cpu()
    if r.protected is not None:
        words = words.masked_fill(r.protected.cpu(), -1)
    return word_span_masking(words, r.ratio, generator=generator, p=p, max_span=max_span, device=r.device)


def whole_word_strategy(request: MaskRequest, generator: torch.Generator | None) -> MaskSample:
    """``whole_word``: :func:`whole_word_masking` on ``word_ids``; protected pieces leave their word out."""
    if request.word_ids is None:
        raise ValueError("mask kind 'whole_word' needs word_ids (B, L) in the batch")
    words = request.word_ids.cpu()
    if request.protected is not None:
        words = words.masked_fill(request.protected.cpu(), -1)
    return whole_word_masking(words, request.ratio, generator=generator, device=request.device)
