"""Attention-guided masking (AttMask): token importance from attention weights, high/low masking, budget."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab.masks.attention_guided import attention_guided_masking, score_masking, token_importance
from masklab.nn.blocks import Encoder, TransformerConfig

FAST = settings(max_examples=40, deadline=None)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_high_hides_the_most_important_and_low_the_least():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4]])
    high = attention_guided_masking(scores, 0.5, "high")
    low = attention_guided_masking(scores, 0.5, "low")
    assert high.masked[0].nonzero().flatten().tolist() == [1, 2, 4, 6]  # 0.9, 0.5, 0.8, 0.7
    assert sorted(low.masked[0].nonzero().flatten().tolist()) == [0, 3, 5, 7]  # 0.1, 0.2, 0.3, 0.4
    assert torch.equal(high.masked, ~low.masked)
    assert high.ids_keep.tolist() == [[0, 3, 5, 7]] and low.ids_keep.tolist() == [[1, 2, 4, 6]]


@FAST
@given(
    batch=st.integers(1, 5),
    length=st.integers(1, 60),
    ratio=st.floats(0.0, 0.99),
    mode=st.sampled_from(["high", "low"]),
    noise=st.sampled_from([0.0, 0.05, 1.0]),
    seed=st.integers(0, 2**16),
    padded=st.booleans(),
)
def test_budget_exact_and_padding_never_hidden(batch, length, ratio, mode, noise, seed, padded):
    g = seeded(seed)
    scores = torch.rand(batch, length, generator=g).round(decimals=1)  # many exact ties
    padding = None
    if padded:
        padding = torch.rand(batch, length, generator=g) < 0.3
    out = attention_guided_masking(scores, ratio, mode, generator=g, noise_scale=noise, padding=padding)
    n_real = torch.full((batch,), length) if padding is None else (~padding).sum(1)
    expected = torch.tensor([n - int(n * (1 - ratio)) for n in n_real.tolist()])
    assert torch.equal(out.masked.sum(1), expected)
    if padding is not None:
        assert not (out.masked & padding).any()
    if noise == 0.0:  # without noise every hidden token scores at least as high (low) as every visible one
        for row in range(batch):
            real = torch.ones(length, dtype=torch.bool) if padding is None else ~padding[row]
            hidden, visible = scores[row][out.masked[row]], scores[row][real & ~out.masked[row]]
            if len(hidden) and len(visible):
                assert hidden.min() >= visible.max() if mode == "high" else hidden.max() <= visible.min()


def test_noise_randomises_near_ties_reproducibly():
    scores = torch.tensor([[1.0, 0.99, 0.98, 0.97, 0.0, 0.01, 0.02, 0.03]]).repeat(64, 1)
    a = attention_guided_masking(scores, 0.25, "high", generator=seeded(0), noise_scale=0.1)
    b = attention_guided_masking(scores, 0.25, "high", generator=seeded(0), noise_scale=0.1)
    assert torch.equal(a.masked, b.masked)
    assert len({tuple(row.tolist()) for row in a.masked}) > 1  # the near-tied top four swap
    assert not a.masked[:, 4:].any()  # but never reach the clearly unimportant half
    exact = attention_guided_masking(scores, 0.25, "high")
    assert torch.equal(exact.masked[0, :4], torch.tensor([True, True, False, False]))


def test_token_importance_cls_row_and_mean_received():
    g = seeded(3)
    w = torch.rand(2, 3, 5, 5, generator=g).softmax(-1)  # (B, H, L, L)
    first = torch.rand(2, 3, 5, 5, generator=g).softmax(-1)
    torch.testing.assert_close(token_importance([first, w], cls_index=0), w.mean(1)[:, 0])
    torch.testing.assert_close(token_importance([first, w]), w.mean(1).mean(1))
    torch.testing.assert_close(token_importance([first, w], cls_index=0, layer=None), ((first + w) / 2).mean(1)[:, 0])
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    expected = torch.stack([w[0].mean(0).mean(0), w[1].mean(0)[:3].mean(0)])
    torch.testing.assert_close(token_importance([w], padding=padding), expected)


def test_importance_from_a_real_encoder_drives_masking():
    """End to end: reference-path weights of an Encoder -> CLS importance over patches -> AttMask masks."""
    torch.manual_seed(0)
    encoder = Encoder(TransformerConfig(dim=32, depth=2, heads=2)).eval()
    x = torch.randn(3, 1 + 16, 32)  # CLS + 16 patches
    _, weights = encoder(x, return_weights=True)
    scores = token_importance(weights, cls_index=0)[:, 1:]  # (B, 16) drop the CLS column
    assert scores.shape == (3, 16)
    out = attention_guided_masking(scores, 0.75, "high")
    assert out.masked.sum(1).tolist() == [12, 12, 12]
    least_attended = scores.topk(4, dim=1, largest=False).indices.sort(1).values  # the 4 visible patches
    assert torch.equal(out.ids_keep, least_attended)


def test_score_masking_rows_with_different_counts_have_no_ids():
    padding = torch.tensor([[False, False, False, False], [False, False, True, True]])
    out = score_masking(torch.rand(2, 4), 0.5, padding=padding)
    assert out.masked.sum(1).tolist() == [2, 1]
    assert out.ids_keep is None and out.ids_restore is None


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        attention_guided_masking(torch.rand(1, 4), 0.5, "middle")
    with pytest.raises(ValueError, match="ratio"):
        attention_guided_masking(torch.rand(1, 4), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        attention_guided_masking(torch.tensor([[0.1, float("nan")]]), 0.5)
    with pytest.raises(ValueError, match="scores"):
        attention_guided_masking(torch.rand(4), 0.5)
    with pytest.raises(ValueError, match="noise_scale"):
        attention_guided_masking(torch.rand(1, 4), 0.5, noise_scale=-1.0)
    with pytest.raises(ValueError, match="padding"):
        attention_guided_masking(torch.rand(1, 4), 0.5, padding=torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="non-empty"):
        token_importance([])
    with pytest.raises(ValueError, match="cls_index"):
        token_importance([torch.rand(1, 1, 3, 3)], cls_index=5)
    with pytest.raises(ValueError, match="layer"):
        token_importance([torch.rand(1, 1, 3, 3)], layer=2)
