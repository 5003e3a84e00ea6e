import pytest
import torch

from masklab import masks as M
from masklab.nn import MaskedSelfAttention
from masklab.nn.attention import BlockMaskCache, flex_attention, flex_available, plan_attention, use_cpu_attention

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # plans only; nothing runs on CUDA here


def kernel(rule, device=CPU, length=4096, **kw):
    return plan_attention(rule, q_len=length, kv_len=length, device=device, **kw).kernel


def test_plans_and_reasons():
    assert kernel(None) == "sdpa"
    assert kernel(M.causal()) == "sdpa_causal"
    assert kernel(M.causal() | M.key_padding(torch.zeros(2, 4096, dtype=torch.bool))) == "sdpa_mask"
    assert kernel(torch.zeros(1, 1, 1, 4096, dtype=torch.bool)) == "sdpa_mask"
    assert kernel(M.sliding_window(128)) == "sdpa_mask"
    assert kernel(M.causal(), return_weights=True) == "reference"
    assert kernel(M.sliding_window(128), device=CUDA, length=256) == "sdpa_mask"
    assert kernel(M.sliding_window(128).dense(4096), device=CUDA) == "sdpa_mask"
    assert kernel(M.sliding_window(128), device=CUDA, dropout=True) == "sdpa_mask"
    expected = "flex" if flex_available() else "sdpa_mask"
    assert kernel(M.sliding_window(128), device=CUDA) == expected
    assert kernel(M.causal() | M.document(torch.zeros(2, 4096, dtype=torch.long)), device=CUDA) == expected
    plan = plan_attention(M.sliding_window(8), q_len=64, kv_len=64, device=CPU)
    assert "cpu" in plan.reason


def test_the_cpu_bmm_kernel_replaces_sdpa_and_dense_masks_on_cpu_only():
    padded = torch.zeros(2, 1, 1, 64, dtype=torch.bool)
    assert kernel(None, length=64, cpu_kernel="bmm") == "bmm"
    assert kernel(padded, length=64, cpu_kernel="bmm") == "bmm"
    assert kernel(M.sliding_window(8), length=64, cpu_kernel="bmm") == "bmm"
    assert kernel(M.causal(), length=64, cpu_kernel="bmm") == "sdpa_causal"  # SDPA's own causal kernel stays
    assert kernel(padded, length=64, cpu_kernel="bmm", return_weights=True) == "reference"
    assert kernel(padded, device=CUDA, length=64, cpu_kernel="bmm") == "sdpa_mask"


def test_module_on_the_bmm_kernel_equals_sdpa():
    torch.manual_seed(0)
    attn = MaskedSelfAttention(16, 2).eval()
    x = torch.randn(3, 7, 16)
    blocked = M.padding_to_blocked(M.padding_from_lengths(torch.tensor([7, 3, 1]), 7))
    want = attn(x, blocked=blocked)
    assert attn.last_plan.kernel == "sdpa_mask"
    use_cpu_attention(attn, "bmm")
    got = attn(x, blocked=blocked)
    assert attn.last_plan.kernel == "bmm"
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="'sdpa' or 'bmm'"):
        use_cpu_attention(attn, "flash")


def test_module_rule_equals_dense_mask_and_reports_the_kernel():
    torch.manual_seed(0)
    attn = MaskedSelfAttention(16, 2).eval()
    x = torch.randn(2, 12, 16)
    padding = M.padding_from_lengths(torch.tensor([12, 7]), 12)
    rule = M.sliding_window(4)
    got = attn(x, blocked=rule | M.key_padding(padding))
    assert attn.last_plan.kernel == "sdpa_mask"
    want = attn(x, blocked=rule.dense(12) | M.padding_to_blocked(padding))
    torch.testing.assert_close(got, want)
    causal = attn(x, blocked=M.causal())
    assert attn.last_plan.kernel == "sdpa_causal"
    torch.testing.assert_close(attn(x, blocked=M.causal().dense(12)), causal)
    _, weights = attn(x, blocked=rule, return_weights=True)
    assert attn.last_plan.kernel == "reference" and bool((weights[rule.dense(12).expand_as(weights)] == 0).all())


@pytest.mark.skipif(not flex_available(), reason="no FlexAttention in this torch")
def test_block_mask_cache_and_flex_kernel_with_dead_rows():
    cache = BlockMaskCache(maxsize=2)
    a = cache.get(M.causal(), 256, 256, CPU)
    assert cache.get(M.causal(), 256, 256, CPU) is a and cache.hits == 1
    cache.get(M.sliding_window(64), 256, 256, CPU)
    cache.get(M.sliding_window(32), 256, 256, CPU)
    assert cache.get(M.causal(), 256, 256, CPU) is not a  # evicted (LRU of 2)
    padding = M.padding_from_lengths(torch.tensor([256, 100]), 256, left=True)
    per_batch = M.causal() | M.key_padding(padding)
    assert cache.get(per_batch, 256, 256, CPU) is not cache.get(per_batch, 256, 256, CPU)  # never cached
    # Left padding + causal: the first 156 queries of row 1 see nothing; Flex must give zeros like SDPA.
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 256, 16, generator=g) for _ in range(3))
    from masklab.nn import sdpa_attention

    got = flex_attention(q, k, v, per_batch.block_mask(256))
    torch.testing.assert_close(got, sdpa_attention(q, k, v, per_batch.dense(256)), atol=1e-5, rtol=1e-5)
    assert bool((got[1, :, :156] == 0).all())
