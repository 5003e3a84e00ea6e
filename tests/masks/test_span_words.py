"""SpanBERT span masking in whole words (``word_span_masking``, ``span`` with ``options["span_unit"] = "word"``).

SpanBERT (Joshi et al. 2020, Sec. 3.1) samples span lengths in complete words (Geometric(0.2) clipped at 10),
starts a span at the start of a word and hides whole words until ~15% of the tokens are hidden. Each test is
checked against a per-row pure-Python reference fed the same random draws, or against the distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab.masks import MaskRequest, draw_mask, span_masking, word_span_masking

FAST = settings(max_examples=30, deadline=None)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_words(seed: int, batch: int, length: int, holes: float = 0.1, pad: bool = True) -> torch.Tensor:
    """long (B, L) word ids: words of 1-3 pieces, ``holes`` share of -1 tokens between words, right padding
    (random row lengths) if ``pad``."""
    rng = np.random.default_rng(seed)
    ids = np.full((batch, length), -1)
    for b in range(batch):
        i, word, end = 0, 0, int(rng.integers(0, length + 1)) if pad else length
        while i < end:
            if rng.random() < holes:
                i += 1
                continue
            pieces = int(rng.integers(1, 4))
            ids[b, i : min(i + pieces, end)] = word
            i, word = i + pieces, word + 1
    return torch.from_numpy(ids)


def reference(word_ids: torch.Tensor, ratio: float, seed: int, p: float = 0.2, max_span: int = 10) -> torch.Tensor:
    """The algorithm row by row, drawing ``torch.rand(B, 2)`` per round for all rows like the batched code."""
    g = seeded(seed)
    probs = p * (1 - p) ** np.arange(max_span)
    cdf = np.cumsum(probs) / probs.sum()
    cdf[-1] = 1.0
    rows = []
    for row in word_ids.tolist():
        words: list[list[int]] = []  # positions of each word, in order
        groups: list[int] = []  # words with no -1 between them share a group
        group, prev = 0, -1
        for i, w in enumerate(row):
            if w < 0:
                group, prev = group + 1, -1
                continue
            if w != prev:
                words.append([])
                groups.append(group)
            words[-1].append(i)
            prev = w
        n_real = sum(len(w) for w in words)
        budget = max(1, round(ratio * n_real)) if n_real and ratio > 0 else 0
        rows.append({"words": words, "groups": groups, "hidden": [False] * len(words), "count": 0, "budget": budget})
    while any(r["count"] < r["budget"] for r in rows):
        u = torch.rand(len(rows), 2, generator=g, dtype=torch.float64).tolist()
        for r, (u_len, u_start) in zip(rows, u, strict=True):
            if r["count"] >= r["budget"]:
                continue
            span = int(np.searchsorted(cdf, u_len, side="right")) + 1
            free = [j for j, h in enumerate(r["hidden"]) if not h]
            start = free[math.floor(u_start * len(free))]
            for j in range(start, min(start + span, len(r["words"]))):
                if r["groups"][j] != r["groups"][start] or r["count"] >= r["budget"]:
                    break
                if r["hidden"][j]:
                    continue
                over, short = r["count"] + len(r["words"][j]) - r["budget"], r["budget"] - r["count"]
                if over > short and r["count"] > 0:  # stopping before this word is nearer the budget
                    r["budget"] = r["count"]
                    break
                r["hidden"][j] = True
                r["count"] += len(r["words"][j])
    masked = torch.zeros(word_ids.shape, dtype=torch.bool)
    for b, r in enumerate(rows):
        for word, hidden in zip(r["words"], r["hidden"], strict=True):
            masked[b, word] = hidden
    return masked


def test_small_hand_checked_example():
    # 6 words of 2 pieces in one group; ratio 0.99 hides every word, ratio 0.1 hides one whole word (budget 1 -> 2).
    words = torch.tensor([[-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, -1]])
    assert word_span_masking(words, 0.99, generator=seeded(0)).masked.tolist() == [(words >= 0).tolist()[0]]
    masked = word_span_masking(words, 0.1, generator=seeded(0)).masked[0]
    assert int(masked.sum()) == 2
    hidden = set(words[0][masked].tolist())
    assert len(hidden) == 1 and bool(masked[words[0] == hidden.pop()].all())


@FAST
@given(seed=st.integers(0, 2**31), batch=st.integers(1, 5), length=st.integers(1, 50), ratio=st.floats(0, 0.95))
def test_matches_the_row_by_row_reference(seed, batch, length, ratio):
    words = random_words(seed, batch, length)
    masked = word_span_masking(words, ratio, generator=seeded(seed + 1)).masked
    assert torch.equal(masked, reference(words, ratio, seed + 1))


@FAST
@given(seed=st.integers(0, 2**31), batch=st.integers(1, 5), length=st.integers(1, 60), ratio=st.floats(0.01, 0.9))
def test_whole_words_and_budget(seed, batch, length, ratio):
    words = random_words(seed, batch, length)
    masked = word_span_masking(words, ratio, generator=seeded(seed)).masked
    assert not bool(masked[words < 0].any())  # special tokens and padding are never hidden
    for b in range(batch):
        for w in set(words[b][masked[b]].tolist()):
            assert bool(masked[b][words[b] == w].all())  # no partly hidden word
        n_real = int((words[b] >= 0).sum())
        budget = max(1, round(ratio * n_real)) if n_real else 0
        # whole words: the nearer of stopping before or after the crossing word (words here have <= 3 pieces)
        assert abs(int(masked[b].sum()) - budget) <= (2 if budget == 1 else 1)
        assert n_real == 0 or int(masked[b].sum()) > 0


def test_at_least_one_word_in_short_rows():
    words = torch.tensor([[-1, 0, 1, -1, -1], [-1, 0, 0, 1, -1], [-1, -1, -1, -1, -1]])  # 2, 3 and 0 real tokens
    masked = word_span_masking(words, 0.15, generator=seeded(1)).masked
    assert masked.sum(1).tolist()[2] == 0 and bool((masked.sum(1)[:2] >= 1).all())
    # The token-level spans (masklab's original rule) hide round(0.15 * n) = 0 of them.
    old = span_masking(3, 5, 0.15, generator=seeded(1), protected=words < 0).masked
    assert old.sum().item() == 0


def test_span_lengths_in_words_follow_the_truncated_geometric():
    p, max_span = 0.2, 10
    probs = p * (1 - p) ** np.arange(max_span)
    probs /= probs.sum()
    # Long rows, low ratio: spans rarely touch, so each run of hidden words is one span (the cut final span
    # of a row and merged spans are ~3% of runs); tolerance: 5 binomial standard deviations plus 0.01 for that.
    words = random_words(3, 32, 20_000, holes=0.0, pad=False).numpy()
    masked = word_span_masking(torch.from_numpy(words), 0.02, generator=seeded(4)).masked.numpy()
    first = np.diff(words, axis=1, prepend=-1) != 0  # (B, L) first piece of each word (no -1 here)
    flags = np.pad(masked & first, ((0, 0), (0, 1)))[np.pad(first, ((0, 0), (0, 1)), constant_values=True)]
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8)]))  # hidden flag per word, rows separated
    runs_a = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)  # run lengths in words
    hist = np.bincount(runs_a, minlength=max_span + 1)[1 : max_span + 1] / len(runs_a)
    sigma = np.sqrt(probs * (1 - probs) / len(runs_a))
    assert np.all(np.abs(hist - probs) <= 5 * sigma + 0.01), (hist.round(3), probs.round(3))
    assert np.mean(runs_a > max_span) < 0.01  # touching spans rarely merge into longer runs
    assert runs_a.mean() == pytest.approx(3.8, rel=0.05)


def test_strategy_units():
    words = random_words(5, 4, 40)
    protected = words < 0
    request = MaskRequest(4, 40, 0.3, protected=protected, word_ids=words, options={"span_unit": "word"})
    masked = draw_mask("span", request, seeded(6)).masked
    assert torch.equal(masked, reference(words, 0.3, 6))
    # No word ids: every unprotected token is its own word (spans of tokens, at least one per row).
    no_words = MaskRequest(4, 40, 0.3, protected=protected, options={"span_unit": "word"})
    tokens = torch.arange(40).expand(4, 40).masked_fill(protected, -1)
    assert torch.equal(draw_mask("span", no_words, seeded(6)).masked, reference(tokens, 0.3, 6))
    # No unit (other models) or "token": masklab's original token-level spans, word ids ignored, same draws.
    old = span_masking(4, 40, 0.3, generator=seeded(6), protected=protected).masked
    for options in ({}, {"span_unit": "token"}):
        request = MaskRequest(4, 40, 0.3, protected=protected, word_ids=words, options=options)
        assert torch.equal(draw_mask("span", request, seeded(6)).masked, old)
    with pytest.raises(ValueError, match="span_unit"):
        draw_mask("span", MaskRequest(4, 40, 0.3, options={"span_unit": "piece"}), seeded(6))


def test_input_checks():
    with pytest.raises(ValueError, match="word_ids"):
        word_span_masking(torch.zeros(3), 0.15)
    with pytest.raises(ValueError, match="word_ids"):
        word_span_masking(torch.zeros(2, 3), 0.15)
    with pytest.raises(ValueError, match="ratio"):
        word_span_masking(torch.zeros(2, 3, dtype=torch.long), 1.5)
    with pytest.raises(ValueError, match="p must"):
        word_span_masking(torch.zeros(2, 3, dtype=torch.long), 0.15, p=0)
