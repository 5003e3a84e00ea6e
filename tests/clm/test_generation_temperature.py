"""Any temperature generation accepts samples: tiny ones (1e-300, 1e-320) pick among the likeliest tokens as
greedy does, instead of dividing the logits into inf / NaN and failing inside ``torch.multinomial``."""

import math

import pytest
import torch

from masklab.models.clm import GPT, GPTConfig
from masklab.models.clm.generation import generate, next_tokens


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, context=32, dim=32, depth=1, heads=4)).eval()


@pytest.mark.parametrize("temperature", [1e-45, 1e-300, 1e-320, 5e-324])
def test_a_tiny_temperature_samples_the_likeliest_token(model, temperature):
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(0)) * 30
    picked = next_tokens(logits, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(dim=-1))
    greedy = generate(model, [[1, 2, 3]], max_new_tokens=8, temperature=0.0)
    assert generate(model, [[1, 2, 3]], max_new_tokens=8, temperature=temperature, top_k=5) == greedy


def test_large_logits_and_ties_sample_without_nan():
    logits = torch.tensor([[3e38, 3e38, -3e38, 0.0]])
    picks = {int(next_tokens(logits, temperature=1e-30, generator=torch.Generator().manual_seed(s))) for s in range(20)}
    assert picks == {0, 1}  # the tied likeliest tokens, never a NaN draw


@pytest.mark.parametrize("temperature", [math.nan, math.inf])
def test_a_temperature_that_is_not_finite_is_refused(model, temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        generate(model, [[1, 2, 3]], max_new_tokens=2, temperature=temperature)
