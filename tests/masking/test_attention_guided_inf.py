"""``attention_guided_masking`` with ±inf scores: with ``noise_scale > 0`` the min-max rescale used to turn them
into NaN (and a misleading "scores contain NaN" error); they now rank as in :func:`score_masking`: +inf above
every finite score, -inf below."""

import math

import torch

from masklab.masks.attention_guided import attention_guided_masking, score_masking

INF = math.inf


def test_infinite_scores_keep_their_rank_under_noise():
    scores = torch.tensor([[INF, 0.1, 0.2, 0.3, -INF, 0.4], [0.5, -INF, 0.1, 0.9, 0.2, 0.3]])
    for mode in ("high", "low"):
        expected = score_masking(scores, 0.5, descending=mode == "high").masked
        got = attention_guided_masking(scores, 0.5, mode, generator=torch.Generator().manual_seed(0), noise_scale=1e-9)
        assert torch.equal(got.masked, expected), mode
    high = attention_guided_masking(scores, 0.5, "high", generator=torch.Generator().manual_seed(0), noise_scale=1e-9)
    assert high.masked[0].tolist() == [True, False, False, True, False, True]


def test_large_noise_never_moves_an_infinite_score():
    scores = torch.tensor([[INF, 0.1, 0.2, 0.3, -INF, 0.4, 0.5, 0.6]] * 64)
    g = torch.Generator().manual_seed(1)
    high = attention_guided_masking(scores, 0.25, "high", generator=g, noise_scale=10.0).masked
    assert bool(high[:, 0].all()) and not bool(high[:, 4].any())
    low = attention_guided_masking(scores, 0.25, "low", generator=g, noise_scale=10.0).masked
    assert bool(low[:, 4].all()) and not bool(low[:, 0].any())
    assert len({tuple(r) for r in high.tolist()}) > 1  # the noise still reorders the finite scores


def test_rows_of_infinities_and_padding():
    scores = torch.tensor([[INF, INF, -INF, -INF], [-INF, 0.0, 1.0, INF]])
    padding = torch.tensor([[False, False, False, False], [False, False, False, True]])
    got = attention_guided_masking(
        scores, 0.5, "high", generator=torch.Generator().manual_seed(2), noise_scale=0.5, padding=padding
    ).masked
    assert got[0].tolist() == [True, True, False, False]  # ties among +inf: by position, as score_masking
    assert got[1].tolist() == [False, True, True, False]  # 3 real tokens hide 2: the finite ones
