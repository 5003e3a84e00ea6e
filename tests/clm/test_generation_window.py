"""Past the context length, each row of a batch slides its window when it would alone: a left-padded row
still produces the tokens of its prompt generated on its own (the whole batch slid when its longest row did,
so shorter rows were cut early and their continuations changed)."""

import pytest
import torch

from masklab.models.clm.generation import generate, slide_rows
from masklab.models.clm.model import GPT, GPTConfig


@pytest.mark.parametrize("kernel_seed", [0, 1])
def test_rows_past_the_context_generate_what_they_would_alone(kernel_seed):
    torch.manual_seed(kernel_seed)
    model = GPT(GPTConfig(vocab_size=50, context=12, dim=32, depth=2, heads=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [3, 4], [7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]]
    batched = generate(model, prompts, max_new_tokens=30)
    for prompt, row in zip(prompts, batched, strict=True):
        assert row == generate(model, [prompt], max_new_tokens=30)[0], prompt


def test_slide_rows_keeps_a_short_row_whole_and_cuts_a_long_one():
    ids = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    padding = torch.tensor([[True, True, False, False], [False, False, False, False]])
    steps = [torch.tensor([5, 5]), torch.tensor([6, 6])]
    new_ids, new_padding = slide_rows(ids, padding, steps, context=5, window=3, pad_id=0)
    assert new_ids.tolist() == [[3, 4, 5, 6], [0, 4, 5, 6]]  # row 0: 4 tokens <= 5, kept; row 1: 6 > 5, last 3
    assert new_padding.tolist() == [[False] * 4, [True, False, False, False]]
