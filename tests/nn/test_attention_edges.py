"""Edges of the attention kernels against float64 math: float16 scores that overflow before scaling, and a
causal flag that cannot mean masklab's (bottom-right) rule."""

from __future__ import annotations

import pytest
import torch

from masklab.masks.attention import causal
from masklab.nn.attention import bmm_attention, reference_attention, sdpa_attention


def _truth(q, k, v, blocked=None):
    s = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if blocked is not None:
        s = s.masked_fill(blocked, float("-inf"))
    return torch.softmax(s, -1) @ v.double()


@pytest.mark.parametrize("masked", [False, True])
def test_float16_scores_beyond_its_range_before_scaling_stay_finite(masked):
    # |q.k| ~ 74,000 > 65,504 (float16's max), ~9,200 once scaled by 1/sqrt(64): the reference path and the
    # unmasked bmm path multiplied first and returned NaN; SDPA scales first.
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 4, 64, generator=g) * 34
    k, v = q.clone(), torch.randn(1, 2, 4, 64, generator=g)
    assert (q.double() @ k.double().transpose(-1, -2)).abs().max() > 65504
    blocked = None
    if masked:
        blocked = torch.zeros(1, 1, 1, 4, dtype=torch.bool)
        blocked[..., -1] = True
    truth = _truth(q, k, v, blocked)
    qh, kh, vh = q.half(), k.half(), v.half()
    outputs = {
        "reference": reference_attention(qh, kh, vh, blocked)[0],
        "sdpa": sdpa_attention(qh, kh, vh, blocked),
        "bmm": bmm_attention(qh, kh, vh, blocked),
    }
    for name, out in outputs.items():
        assert torch.isfinite(out).all(), name
        torch.testing.assert_close(out.double(), truth, atol=3e-3, rtol=0, msg=name)
    weights = reference_attention(qh, kh, vh, blocked)[1]
    assert torch.isfinite(weights).all()


def test_float32_paths_still_match_float64():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    blocked = causal().dense(5, 5)
    truth = _truth(q, k, v, blocked)
    torch.testing.assert_close(reference_attention(q, k, v, blocked)[0].double(), truth, atol=1e-6, rtol=0)
    torch.testing.assert_close(bmm_attention(q, k, v).double(), _truth(q, k, v), atol=1e-6, rtol=0)


def test_is_causal_with_fewer_queries_than_keys_is_refused():
    # SDPA's is_causal is top-left aligned when Lq != Lk: query 0 of 2 over 5 keys saw key 0 only, where
    # masklab's causal rule (the queries are the last 2 positions) lets it see keys 0-3.
    g = torch.Generator().manual_seed(2)
    q = torch.randn(1, 1, 2, 4, generator=g)
    k, v = torch.randn(1, 1, 5, 4, generator=g), torch.randn(1, 1, 5, 4, generator=g)
    with pytest.raises(ValueError, match=r"is_causal needs as many queries as keys \(got 2 and 5\)"):
        sdpa_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(
        sdpa_attention(q, k, v, causal().dense(2, 5)).double(), _truth(q, k, v, causal().dense(2, 5)), atol=1e-6, rtol=0
    )
    same = torch.randn(1, 1, 5, 4, generator=g)
    torch.testing.assert_close(
        sdpa_attention(same, k, v, is_causal=True).double(), _truth(same, k, v, causal().dense(5, 5)), atol=1e-6, rtol=0
    )
