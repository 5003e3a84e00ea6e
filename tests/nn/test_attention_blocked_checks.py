"""A wrong ``blocked`` (float additive mask, 0/1 integers, a shape that does not broadcast, a rule over another
batch or key length) is one ValueError on every kernel path, naming the argument and its polarity."""

import re

import pytest
import torch

from masklab import masks as M
from masklab.nn import MaskedSelfAttention, reference_attention, sdpa_attention
from masklab.nn.attention import bmm_attention

HINT = r"blocked.*True = query may NOT attend.*from_additive.*from_sdpa"


def module(kernel: str = "sdpa") -> MaskedSelfAttention:
    torch.manual_seed(0)
    m = MaskedSelfAttention(16, 4)
    m.cpu_kernel = kernel  # type: ignore[assignment]
    return m


def call(m: MaskedSelfAttention, x: torch.Tensor, blocked, path: str):
    if path == "weights":
        return m(x, blocked=blocked, return_weights=True)
    if path == "reference":
        m.backend = "reference"
    return m(x, blocked=blocked)


PATHS = ["sdpa", "weights", "reference", "bmm"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("blocked", [torch.zeros(1, 1, 6, 6), torch.ones(1, 1, 6, 6, dtype=torch.long)])
def test_non_bool_blocked_is_one_value_error_on_every_path(path, blocked):
    m, x = module("bmm" if path == "bmm" else "sdpa"), torch.randn(2, 6, 16)
    with pytest.raises(ValueError, match=HINT):
        call(m, x, blocked, path)


@pytest.mark.parametrize("kernel", [reference_attention, sdpa_attention, bmm_attention])
def test_kernels_refuse_a_float_blocked(kernel):
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match=HINT):
        kernel(q, q, q, torch.zeros(1, 1, 4, 4))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "blocked",
    [
        torch.zeros(3, 1, 6, 6, dtype=torch.bool),  # batch 3 for a batch of 2
        torch.zeros(2, 1, 6, 5, dtype=torch.bool),  # 5 keys for 6
        torch.zeros(1, 2, 1, 1, 6, dtype=torch.bool),  # 5-D: padding_to_blocked of a 3-D tensor, before the fix
        torch.zeros(6, dtype=torch.bool),  # 1-D: SDPA refuses it with an IndexError
    ],
)
def test_blocked_that_does_not_broadcast_names_the_shapes(path, blocked):
    m, x = module("bmm" if path == "bmm" else "sdpa"), torch.randn(2, 6, 16)
    with pytest.raises(ValueError, match=rf"blocked.*{re.escape(str(tuple(blocked.shape)))}.*\(2, 4, 6, 6\)"):
        call(m, x, blocked, path)


@pytest.mark.parametrize("path", PATHS)
def test_rules_over_another_batch_or_key_length_are_value_errors(path):
    m, x = module("bmm" if path == "bmm" else "sdpa"), torch.randn(2, 6, 16)
    with pytest.raises(ValueError, match="5 keys"):
        call(m, x, M.key_padding(torch.zeros(2, 5, dtype=torch.bool)), path)
    with pytest.raises(ValueError, match=r"batch.*3.*2"):
        call(m, x, M.causal() | M.key_padding(torch.zeros(3, 6, dtype=torch.bool)), path)


@pytest.mark.parametrize("path", PATHS)
def test_valid_masks_still_run(path):
    m, x = module("bmm" if path == "bmm" else "sdpa"), torch.randn(2, 6, 16)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    for blocked in (M.padding_to_blocked(padding), padding[:1], M.causal() | M.key_padding(padding)):
        out = call(m, x, blocked, path)
        out = out[0] if isinstance(out, tuple) else out
        assert out.shape == (2, 6, 16) and bool(torch.isfinite(out).all())
