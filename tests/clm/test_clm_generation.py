"""Sampling options, stop conditions and input checks of masklab.models.generation."""

import pytest
import torch

from masklab.models.clm import GPT, GPTConfig
from masklab.models.clm.generation import filter_logits, generate, generate_text, left_pad, next_tokens

VOCAB = 40
ALPHABET = "abcdefghijklmnopqrstuvwxyz .,\n!?ABCDEFGH"  # one character per id


def encode(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


def decode(ids) -> str:
    return "".join(ALPHABET[i] for i in ids)


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, context=64, dim=32, depth=2, heads=4)).eval()


def test_filter_logits_matches_hf_warpers():
    generation = pytest.importorskip("transformers.generation.logits_process")
    logits = torch.randn(4, VOCAB, generator=torch.Generator().manual_seed(1))
    for k in (1, 5, VOCAB):
        want = generation.TopKLogitsWarper(top_k=k)(None, logits.clone())
        torch.testing.assert_close(filter_logits(logits, top_k=k), want)
    for p in (0.05, 0.5, 0.9):
        want = generation.TopPLogitsWarper(top_p=p)(None, logits.clone())
        assert torch.equal(filter_logits(logits, top_p=p).isinf(), want.isinf())


def test_sampling_is_seeded_and_filters_narrow_it(model):
    g = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    a = generate(model, [[1, 2, 3]], max_new_tokens=20, temperature=1.0, generator=g(0))
    b = generate(model, [[1, 2, 3]], max_new_tokens=20, temperature=1.0, generator=g(0))
    c = generate(model, [[1, 2, 3]], max_new_tokens=20, temperature=1.0, generator=g(1))
    assert a == b and a != c
    greedy = generate(model, [[1, 2, 3]], max_new_tokens=20)
    assert generate(model, [[1, 2, 3]], max_new_tokens=20, temperature=1.0, top_k=1, generator=g(2)) == greedy
    assert generate(model, [[1, 2, 3]], max_new_tokens=20, temperature=1.0, top_p=1e-6, generator=g(3)) == greedy


def test_next_tokens_follow_the_distribution():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]]))
    gens = [torch.Generator().manual_seed(s) for s in range(600)]
    draws = torch.cat([next_tokens(logits, temperature=1.0, generator=g) for g in gens])
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    assert freq[3] == 0 and abs(freq[0] - 0.7) < 0.07 and abs(freq[2] - 0.1) < 0.05


def test_eos_stops_a_row_and_keeps_others_going(model):
    free = generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=12)
    eos = free[0][4]
    out = generate(model, [[1, 2, 3], [4, 5]], max_new_tokens=12, eos_id=eos)
    assert out[0] == free[0][: free[0].index(eos) + 1]
    stop_b = free[1].index(eos) + 1 if eos in free[1] else 12
    assert out[1] == free[1][:stop_b]


def test_stop_strings_cut_the_text(model):
    full = generate_text(model, ["abc"], encode=encode, decode=decode, max_new_tokens=30)[0]
    stop = full[5:7]
    cut = generate_text(model, ["abc"], encode=encode, decode=decode, stop=[stop], max_new_tokens=30)[0]
    assert cut == full[: full.index(stop)] and stop not in cut


def test_bad_inputs_are_errors(model):
    with pytest.raises(ValueError, match="empty"):
        left_pad([])
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        generate(model, [[1], []])
    for kwargs, match in [({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"),
                          ({"top_p": 1.5}, "top_p"), ({"max_new_tokens": -2}, "max_new_tokens")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            generate(model, [[1]], **kwargs)


def test_generate_restores_training_mode():
    model = GPT(GPTConfig(vocab_size=VOCAB, context=16, dim=16, depth=1, heads=2, dropout=0.5)).train()
    first = generate(model, [[1, 2]], max_new_tokens=5)
    assert model.training  # put back as it was
    assert generate(model, [[1, 2]], max_new_tokens=5) == first  # and decoding ran without dropout


def test_long_prompt_is_cut_to_the_context(model):
    prompt = list(range(VOCAB)) * 3  # 120 tokens > context 64
    assert generate(model, [prompt], max_new_tokens=3) == generate(model, [prompt[-64:]], max_new_tokens=3)
