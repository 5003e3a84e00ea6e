"""Every backend form round-trips exactly, and SDPA with a converted mask equals nn.MultiheadAttention."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab import masks as M
from masklab.nn import MaskedSelfAttention


@st.composite
def bool_tensors(draw, max_dims=4):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=max_dims))
    n = 1
    for s in shape:
        n *= s
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return torch.tensor(bits, dtype=torch.bool).view(shape)


@st.composite
def paddings(draw):
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    max_len = draw(st.integers(max(lengths), 8))
    left = draw(st.booleans())
    return M.padding_from_lengths(torch.tensor(lengths), max_len, left=left)


@settings(max_examples=60, deadline=None)
@given(bool_tensors())
def test_sdpa_round_trip(blocked):
    assert torch.equal(M.from_sdpa(M.to_sdpa(blocked)), blocked)
    assert torch.equal(M.to_sdpa(M.from_sdpa(blocked)), blocked)


@settings(max_examples=60, deadline=None)
@given(bool_tensors(), st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
def test_additive_round_trip(blocked, dtype):
    additive = M.to_additive(blocked, dtype)
    assert additive.dtype == dtype
    assert torch.equal(M.from_additive(additive), blocked)
    assert bool(torch.isfinite(additive).all())  # dtype min, never -inf


@settings(max_examples=60, deadline=None)
@given(paddings())
def test_padding_forms_round_trip(padding):
    assert torch.equal(M.from_hf_attention_mask(M.to_hf_attention_mask(padding)), padding)
    assert torch.equal(M.from_hf_attention_mask(M.to_hf_attention_mask(padding, torch.float32)), padding)
    assert torch.equal(M.from_key_padding_mask(M.to_key_padding_mask(padding)), padding)
    assert torch.equal(M.from_mha_attn_mask(M.to_mha_attn_mask(padding)), padding)
    hf = M.to_hf_attention_mask(padding)
    assert hf.dtype == torch.long and torch.equal(hf == 1, ~padding)


def test_minus_inf_and_float_key_padding_are_understood():
    add = torch.tensor([[0.0, float("-inf"), 0.0]])
    assert torch.equal(M.from_additive(add), torch.tensor([[False, True, False]]))
    assert torch.equal(M.from_key_padding_mask(add), torch.tensor([[False, True, False]]))


def test_bias_is_not_a_mask():
    with pytest.raises(ValueError, match="bias"):
        M.from_additive(torch.tensor([0.0, -1.5]))
    with pytest.raises(ValueError, match=r"0 .*1"):
        M.from_hf_attention_mask(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="blocked"):
        M.to_sdpa(torch.zeros(2, 2))


def test_hf_masks_match():
    """Hugging Face's own mask builders (transformers.masking_utils, transformers >= 5) agree with ours:
    SDPA polarity (True = attend) and additive floats, for padding and causal | padding."""
    from masklab.masks import causal, key_padding

    hf = pytest.importorskip("transformers.masking_utils")
    padding = M.padding_from_lengths(torch.tensor([3, 5, 1]), 5)
    attention_mask = M.to_hf_attention_mask(padding).bool()
    cases = [
        (hf.bidirectional_mask_function, key_padding(padding)),
        (hf.causal_mask_function, causal() | key_padding(padding)),
    ]
    for mask_function, rule in cases:
        kwargs = dict(batch_size=3, q_length=5, kv_length=5, mask_function=mask_function, attention_mask=attention_mask)
        blocked = rule.dense(5)  # (B, 1, 5, 5) or broadcastable, True = may not attend
        sdpa = hf.sdpa_mask(**kwargs, allow_is_causal_skip=False)  # (B, 1, 5, 5), True = attend
        assert torch.equal(M.from_sdpa(sdpa), blocked.expand_as(sdpa))
        assert torch.equal(sdpa, M.to_sdpa(blocked).expand_as(sdpa))
        additive = hf.eager_mask(**kwargs, dtype=torch.float32)  # 0 / dtype minimum
        assert torch.equal(M.from_additive(additive), blocked.expand_as(additive))
        assert torch.equal(additive, M.to_additive(blocked).expand_as(additive))


def test_sdpa_safe_unblocks_dead_rows_only():
    blocked = torch.tensor([[True, True], [False, True]])
    attn_mask, dead = M.sdpa_safe(blocked)
    assert torch.equal(dead, torch.tensor([[True], [False]]))
    assert torch.equal(attn_mask, torch.tensor([[True, True], [True, False]]))
    assert torch.equal(M.sdpa_safe(torch.tensor([[False, True]]))[1], torch.tensor([[False]]))


@settings(max_examples=25, deadline=None)
@given(paddings(), st.sampled_from([1, 2, 4]), st.integers(0, 2**16))
def test_sdpa_with_converted_mask_equals_multihead_attention(padding, heads, seed):
    torch.manual_seed(seed)
    B, L = padding.shape
    D = 8
    mha = torch.nn.MultiheadAttention(D, heads, batch_first=True).eval()
    ours = MaskedSelfAttention(D, heads).eval()
    with torch.no_grad():
        ours.qkv.weight.copy_(mha.in_proj_weight)
        ours.qkv.bias.copy_(mha.in_proj_bias)
        ours.proj.weight.copy_(mha.out_proj.weight)
        ours.proj.bias.copy_(mha.out_proj.bias)
    x = torch.randn(B, L, D)
    want, _ = mha(x, x, x, key_padding_mask=M.to_key_padding_mask(padding), need_weights=False)
    got = ours(x, blocked=M.padding_to_blocked(padding))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # Raw SDPA with the converted boolean mask gives the same numbers.
    q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).view(B, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
    raw = F.scaled_dot_product_attention(q, k, v, attn_mask=M.to_sdpa(M.padding_to_blocked(padding)))
    raw = mha.out_proj(raw.transpose(1, 2).reshape(B, L, D))
    torch.testing.assert_close(raw, want, atol=1e-6, rtol=1e-5)
