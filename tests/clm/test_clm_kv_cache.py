"""Incremental decoding against the full forward pass, and left-padded batches against single prompts."""

import pytest
import torch

from masklab.models.clm import GPT, GPTConfig, positions_from_padding
from masklab.models.clm.generation import StaticKVCache, decode_step, generate, left_pad, new_caches
from masklab.nn import KVCache
from masklab.nn.attention import AttentionPlan

VOCAB = 53


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=VOCAB, context=40, dim=32, depth=2, heads=4))
    with torch.no_grad():  # larger weights than GPT-2's init so random logits are far from ties
        for p in m.parameters():
            if p.ndim == 2:
                p.mul_(8.0)
    return m.eval()


def ids_of(length: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cache_cls", ["dynamic", "static"])
@torch.no_grad()
def test_incremental_logits_equal_full_forward(model, cache_cls):
    ids = ids_of(20, seed=1)
    full = model(ids)  # (B, T, V)
    caches = [KVCache() for _ in range(2)] if cache_cls == "dynamic" else new_caches(model, 2)
    prefix = 6
    steps = [model(ids[:, :prefix], caches=caches)]
    for t in range(prefix, ids.shape[1]):
        steps.append(model(ids[:, t : t + 1], caches=caches))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_decode_step_equals_module_path(model):
    """generate()'s single-token step (the model's own blocks, planned as plain SDPA) equals the full forward."""
    ids = ids_of(15, seed=2)
    full = model(ids)
    caches = new_caches(model, 2)
    got = [model(ids[:, :1], caches=caches)[:, 0]]
    for t in range(1, ids.shape[1]):
        got.append(decode_step(model, ids[:, t], torch.full((2,), t), caches, None))
    expected = AttentionPlan("sdpa", "one new query after the cache: causal blocks nothing")
    assert model.decoder.blocks[0].attn.last_plan == expected
    torch.testing.assert_close(torch.stack(got, dim=1), full, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_left_padded_batch_equals_single_prompts(model):
    prompts = [ids_of(n, seed=10 + n, batch=1)[0].tolist() for n in (9, 3, 6)]
    ids, padding = left_pad(prompts)
    # Logits: each left-padded row's real positions equal the unpadded prompt's forward.
    logits = model(ids, padding=padding, positions=positions_from_padding(padding))
    for row, prompt in enumerate(prompts):
        alone = model(torch.tensor([prompt]))[0]
        torch.testing.assert_close(logits[row, ids.shape[1] - len(prompt) :], alone, atol=1e-5, rtol=1e-5)
        assert torch.isfinite(logits[row]).all()  # pad query rows are zeros inside attention, never NaN
    # Generation: the batch gives every row the tokens the prompt gets on its own.
    batched = generate(model, prompts, max_new_tokens=15)
    singles = [generate(model, [p], max_new_tokens=15)[0] for p in prompts]
    assert batched == singles
    assert all(len(set(row)) > 2 for row in singles)


@torch.no_grad()
def test_padded_incremental_equals_padded_full_forward(model):
    """With left padding, cached decoding (positions per row, padding over cached + new keys) == full forward."""
    ids, padding = left_pad([ids_of(12, seed=3, batch=1)[0].tolist(), ids_of(5, seed=4, batch=1)[0].tolist()])
    positions = positions_from_padding(padding)
    full = model(ids, padding=padding, positions=positions)
    caches = new_caches(model, 2)
    prefix = 8
    got = [model(ids[:, :prefix], padding=padding[:, :prefix], positions=positions[:, :prefix], caches=caches)]
    for t in range(prefix, ids.shape[1]):
        got.append(decode_step(model, ids[:, t], positions[:, t], caches, padding[:, : t + 1])[:, None])
    real = ~padding
    torch.testing.assert_close(torch.cat(got, dim=1)[real], full[real], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_generation_past_the_context_slides_the_window(model):
    prompt = ids_of(30, seed=5, batch=1)[0].tolist()
    out = generate(model, [prompt], max_new_tokens=50)[0]  # 80 tokens through a 40-token context
    assert len(out) == 50
    # The first step after a slide continues from the last 3/4 of the context, re-read from scratch.
    context, window = model.config.context, (3 * model.config.context) // 4
    seq = prompt + out
    first_after_slide = context - len(prompt) + 1  # index into `out` of the token predicted after the slide
    tail = torch.tensor([seq[len(prompt) + first_after_slide - window : len(prompt) + first_after_slide]])
    assert out[first_after_slide] == int(model(tail)[0, -1].argmax())


def test_static_cache_capacity_error():
    cache = StaticKVCache(1, 2, 4, capacity=3)
    cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    assert len(cache) == 3
    with pytest.raises(ValueError, match="holds 3 positions"):
        cache.update(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))


def test_positions_past_context_are_an_error(model):
    with pytest.raises(ValueError, match="max_len"):
        model(ids_of(41, seed=6))


@torch.no_grad()
@pytest.mark.parametrize("backend", ["torch", "onednn"])
def test_decode_step_equals_full_forward_on_either_gemm_library(backend):
    from masklab.nn import cpu_linear

    if backend == "onednn" and not cpu_linear._onednn_available():
        pytest.skip("PyTorch built without oneDNN")
    torch.manual_seed(0)
    wide = GPT(GPTConfig(vocab_size=VOCAB, context=24, dim=256, depth=2, heads=4)).eval()
    ids = ids_of(12, seed=6, batch=8)
    with cpu_linear.cpu_linear_backend(backend, wide):
        full = wide(ids)
        caches = new_caches(wide, 8)
        got = [wide(ids[:, :1], caches=caches)[:, 0]]
        for t in range(1, ids.shape[1]):
            got.append(decode_step(wide, ids[:, t], torch.full((8,), t), caches))
    torch.testing.assert_close(torch.stack(got, dim=1), full, atol=1e-5, rtol=1e-5)
