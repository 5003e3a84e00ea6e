"""Score ranking keeps the scores' precision (float64 stays float64, half precision is ranked in float32), padding
always ranks after every real token (even -inf / +inf ones), and the learned masker's soft mask stays on the right
side of 0.5 in every dtype."""

import math

import pytest
import torch

from masklab.masks.attention_guided import attention_guided_masking, score_masking
from masklab.masks.learned import gumbel_noise, relaxed_topk, sample


def test_float64_scores_are_ranked_in_float64():
    scores = torch.tensor([[1.0, 1.0 + 1e-10, 1.0 + 2e-10, 0.5]], dtype=torch.float64)
    assert score_masking(scores, 0.25).masked.tolist() == [[False, False, True, False]]
    assert score_masking(scores, 0.25, descending=False).masked.tolist() == [[False, False, False, True]]
    assert attention_guided_masking(scores, 0.25, "high").masked.tolist() == [[False, False, True, False]]
    low = attention_guided_masking(scores[:, :3].flip(1), 0.3, "low").masked  # the lowest is now last
    assert low.tolist() == [[False, False, True]]


@pytest.mark.parametrize("descending", [True, False])
def test_padding_ranks_after_real_infinite_scores(descending):
    worst = -math.inf if descending else math.inf  # the real token that ranks last
    scores = torch.tensor([[0.0, 1.0, 2.0, worst]])
    padding = torch.tensor([[True, False, False, False]])
    out = score_masking(scores, 0.99, padding=padding, descending=descending)
    assert out.masked.tolist() == [[False, True, True, True]]  # budget 3 of 3 real tokens, padding never


def test_padding_with_real_minus_inf_keeps_the_exact_budget_per_row():
    scores = torch.tensor([[-math.inf, 1.0, -math.inf, 3.0, 0.0], [2.0, -math.inf, -math.inf, 1.0, 0.0]])
    padding = torch.tensor([[False, False, False, True, True], [True, False, False, False, False]])
    out = score_masking(scores, 0.99, padding=padding)
    assert out.masked.sum(1).tolist() == [3, 4]
    assert not bool((out.masked & padding).any())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("hard", [False, True])
def test_soft_is_above_half_exactly_where_masked_in_half_precision(dtype, hard):
    logits = torch.zeros(8, 196, dtype=dtype, requires_grad=True)
    out = sample(logits, 0.75, torch.Generator().manual_seed(0), hard=hard)
    assert out.masked.sum(1).tolist() == [196 - int(196 * 0.25)] * 8
    assert int(((out.soft > 0.5) != out.masked).sum()) == 0
    out.soft.sum().backward()  # the gradient reaches the half-precision logits
    assert logits.grad is not None and logits.grad.dtype == dtype
    # the returned noise replays the relaxation exactly
    replay = relaxed_topk(logits, out.noise, out.masked)
    assert int(((replay > 0.5) != out.masked).sum()) == 0


def _frozen_fp32_sample(logits, ratio, noise, temperature=1.0):
    """The float32 / float64 algorithm as it was before half precision was fixed, for the bit-identity check."""
    noise = noise.to(dtype=logits.dtype)
    perturbed = logits + noise
    masked = score_masking(perturbed.detach(), ratio).masked
    last_hidden = perturbed.masked_fill(~masked, math.inf).amin(dim=1, keepdim=True)
    first_visible = perturbed.masked_fill(masked, -math.inf).amax(dim=1, keepdim=True)
    last_hidden = torch.where(torch.isinf(last_hidden), first_visible + 2.0, last_hidden)
    first_visible = torch.where(torch.isinf(first_visible), last_hidden - 2.0, first_visible)
    threshold = torch.nan_to_num(0.5 * (last_hidden + first_visible), nan=0.0, posinf=0.0, neginf=0.0)
    return masked, torch.sigmoid((perturbed - threshold) / temperature)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_and_float64_results_are_unchanged(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 49, generator=g).to(dtype)
    noise = gumbel_noise((4, 49), g)
    out = sample(logits, 0.75, hard=False, temperature=0.7, noise=noise)
    masked, soft = _frozen_fp32_sample(logits, 0.75, noise, temperature=0.7)
    assert torch.equal(out.masked, masked)
    assert out.soft.dtype == dtype and torch.equal(out.soft, soft)
    assert out.noise.dtype == dtype
