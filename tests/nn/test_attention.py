"""SDPA path == bmm path == reference path == float64 naive softmax, forward and backward, for every mask kind."""

import math

import pytest
import torch

from masklab import masks as M
from masklab.nn import (
    Encoder,
    KVCache,
    MaskedSelfAttention,
    TransformerConfig,
    reference_attention,
    sdpa_attention,
)
from masklab.nn.attention import bmm_attention

B, H, L, DH = 2, 3, 9, 8


def naive(q, k, v, blocked):
    """float64 softmax with explicit exclusion of blocked keys; a row with no key gives zeros."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    allowed = (~blocked).expand_as(scores).double()
    e = torch.exp(scores - scores.amax(-1, keepdim=True)) * allowed
    denom = e.sum(-1, keepdim=True)
    w = torch.where(denom > 0, e / denom.clamp_min(1e-300), torch.zeros_like(e))
    return w @ v


def mask_cases():
    padding = M.padding_from_lengths(torch.tensor([9, 5]), L)
    left_padding = M.padding_from_lengths(torch.tensor([9, 4]), L, left=True)
    doc = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 1, 1, 1, 1, 1, 2, 2, 3]])
    return {
        "causal": M.causal().dense(L),
        "padding": M.padding_to_blocked(padding),
        "causal+left_padding": (M.causal() | M.key_padding(left_padding)).dense(L),  # dead rows
        "sliding": M.sliding_window(3).dense(L),
        "prefix": M.prefix_lm(torch.tensor([2, 6])).dense(L),
        "block_diagonal": (M.causal() | M.document(doc)).dense(L),
        "everything_blocked": torch.ones(1, 1, L, L, dtype=torch.bool),
    }


@pytest.mark.parametrize("case", list(mask_cases()))
def test_three_paths_agree_forward_and_backward(case):
    blocked = mask_cases()[case]
    g = torch.Generator().manual_seed(0)
    qkv = [torch.randn(B, H, L, DH, generator=g, requires_grad=True) for _ in range(3)]
    grad_out = torch.randn(B, H, L, DH, generator=g)
    q64 = [t.detach().double().requires_grad_() for t in qkv]

    want = naive(*q64, blocked)
    (want * grad_out.double()).sum().backward()
    results = {}
    for name, fn in {
        "sdpa": lambda *a: sdpa_attention(*a, blocked),
        "reference": lambda *a: reference_attention(*a, blocked)[0],
        "bmm": lambda *a: bmm_attention(*a, blocked),
    }.items():
        for t in qkv:
            t.grad = None
        out = fn(*qkv)
        (out * grad_out).sum().backward()
        results[name] = out
        torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
        for t, t64 in zip(qkv, q64, strict=False):
            assert not bool(torch.isnan(t.grad).any()), f"{name} NaN grad"
            torch.testing.assert_close(t.grad.double(), t64.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["sdpa"], results["reference"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results["bmm"], results["reference"], atol=1e-6, rtol=1e-5)
    dead = blocked.expand(B, H, L, L).all(-1)
    assert all(bool((out[dead] == 0).all()) for out in results.values())


def test_bmm_path_without_a_mask_equals_sdpa():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(B, H, L, DH, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(bmm_attention(q, k, v), sdpa_attention(q, k, v), atol=1e-12, rtol=1e-12)


def test_is_causal_fast_path_equals_dense_causal():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(B, H, L, DH, generator=g) for _ in range(3))
    torch.testing.assert_close(
        sdpa_attention(q, k, v, is_causal=True),
        naive(q, k, v, M.causal().dense(L)).float(),
        atol=1e-5,
        rtol=1e-5,
    )


def test_reference_weights_rows_sum_to_one_over_unblocked_keys():
    blocked = mask_cases()["causal+left_padding"]
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(B, H, L, DH, generator=g) for _ in range(3))
    _, w = reference_attention(q, k, v, blocked)
    full_blocked = blocked.expand_as(w)
    assert bool((w[full_blocked] == 0).all())
    sums = w.sum(-1)
    dead = full_blocked.all(-1)
    torch.testing.assert_close(sums[~dead], torch.ones_like(sums[~dead]))
    assert bool((sums[dead] == 0).all())


@pytest.mark.parametrize("backend", ["sdpa", "reference"])
def test_module_backends_and_return_weights_agree(backend):
    torch.manual_seed(0)
    attn = MaskedSelfAttention(24, 3, backend=backend).eval()
    x = torch.randn(2, 7, 24)
    padding = M.padding_from_lengths(torch.tensor([7, 3]), 7)
    out = attn(x, blocked=M.causal() | M.key_padding(padding))
    out_w, weights = attn(x, blocked=M.causal() | M.key_padding(padding), return_weights=True)
    torch.testing.assert_close(out, out_w, atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 3, 7, 7)
    attn.backend = "reference" if backend == "sdpa" else "sdpa"
    torch.testing.assert_close(attn(x, blocked=M.causal() | M.key_padding(padding)), out, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "reference"])
def test_causal_encoder_leaks_no_information_from_the_future(backend):
    torch.manual_seed(0)
    cfg = TransformerConfig(dim=16, depth=2, heads=2)
    enc = Encoder(cfg, backend=backend).double().eval()
    T = 6
    x = torch.randn(1, T, 16, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda inp: enc(inp, blocked=M.causal()), x)  # (1, T, D, 1, T, D)
    dep = jac[0, :, :, 0].abs().sum(dim=(1, 3))  # (T_out, T_in)
    for t in range(T):
        for s in range(T):
            if s > t:
                assert dep[t, s] == 0, f"output {t} depends on future input {s}"
            elif s == t:
                assert dep[t, s] > 0  # the test can see a dependence when there is one


def test_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    enc = Encoder(TransformerConfig(dim=16, depth=2, heads=4)).eval()
    x = torch.randn(2, 8, 16)
    full = enc(x, blocked=M.causal())
    caches = [KVCache() for _ in enc.blocks]
    steps = [enc(x[:, :3], blocked=M.causal(), caches=caches)]  # a prompt of 3, then one token at a time
    steps += [enc(x[:, t : t + 1], blocked=M.causal(), caches=caches) for t in range(3, 8)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(caches[0]) == 8


def test_flex_attention_matches_dense_masks():
    flex_mod = pytest.importorskip("torch.nn.attention.flex_attention")
    g = torch.Generator().manual_seed(3)
    T = 256
    q, k, v = (torch.randn(2, 2, T, 16, generator=g) for _ in range(3))
    doc = torch.repeat_interleave(torch.arange(4), T // 4).expand(2, T).contiguous()
    padding = M.padding_from_lengths(torch.tensor([T, 200]), T)
    rules = [M.causal(), M.sliding_window(64), M.causal() | M.document(doc), M.key_padding(padding)]
    for rule in rules:
        want = sdpa_attention(q, k, v, rule.dense(T))
        got = flex_mod.flex_attention(q, k, v, block_mask=rule.block_mask(T))
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=rule.name)


def test_config_errors():
    with pytest.raises(ValueError, match="heads"):
        TransformerConfig(dim=10, depth=1, heads=3)
    with pytest.raises(ValueError, match="activation"):
        TransformerConfig(dim=8, depth=1, heads=2, activation="swish")


@pytest.mark.parametrize("kind", ["padding", "causal+padding"])
def test_encoder_with_padding_compiles_to_one_graph(kind):
    """The mask path is branch-free (no ``bool(tensor)``): fullgraph compile works and equals eager."""
    torch.manual_seed(0)
    enc = Encoder(TransformerConfig(dim=16, depth=2, heads=2)).eval()
    x = torch.randn(2, 6, 16)
    padding = M.padding_from_lengths(torch.tensor([6, 3]), 6)
    blocked = M.padding_to_blocked(padding) if kind == "padding" else M.causal() | M.key_padding(padding)
    compiled = torch.compile(lambda inp: enc(inp, blocked=blocked), fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), enc(x, blocked=blocked))
