"""Wrong inputs to the mask conversions, attention rules and pixel masks fail with a ValueError that names the
argument (never a raw torch error), and the common real additive masks (BERT's -10000, fp16's minimum) convert."""

import numpy as np
import pytest
import torch

from masklab import masks as M
from masklab.masks.pixels import masked_from_pixels, patch_coverage, pixels_from_masked

FLOAT_HINT = r"blocked.*True = query may NOT attend.*from_additive.*from_sdpa"


# ------------------------------------------------------------------------------------------ blocked (C)
@pytest.mark.parametrize(
    "blocked", [torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.long), np.zeros((4, 4), dtype=bool)]
)
def test_sdpa_safe_refuses_a_non_bool_blocked_naming_polarity_and_converters(blocked):
    with pytest.raises(ValueError, match=FLOAT_HINT):
        M.sdpa_safe(blocked)
    with pytest.raises(ValueError, match=FLOAT_HINT):
        M.to_sdpa(blocked)


def test_key_padding_of_another_length_is_a_value_error():
    rule = M.key_padding(torch.zeros(2, 5, dtype=torch.bool))
    for kv_len in (6, 4):  # longer: IndexError before; shorter: silently read a prefix
        with pytest.raises(ValueError, match=r"key_padding.*5 keys.*" + str(kv_len)):
            rule.dense(kv_len)
        with pytest.raises(ValueError, match="5 keys"):
            (M.causal() | rule).dense(kv_len)
    assert rule.dense(5).shape == (2, 1, 5, 5) and (M.causal() | rule).dense(3, 5).shape == (2, 1, 3, 5)
    with pytest.raises(ValueError, match="document covers 4 keys"):
        M.document(torch.zeros(1, 4, dtype=torch.long)).dense(6)


def test_rules_over_different_key_lengths_do_not_combine():
    with pytest.raises(ValueError, match="key length"):
        _ = M.key_padding(torch.zeros(1, 3, dtype=torch.bool)) | M.key_padding(torch.zeros(1, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------ additive (F)
@pytest.mark.parametrize("value", [-10000.0, -1e4, -65504.0, -1e9])
def test_real_two_valued_additive_masks_convert(value):
    add = torch.tensor([[0.0, value, 0.0], [value, value, 0.0]])
    expected = add != 0
    assert torch.equal(M.from_additive(add), expected)
    assert torch.equal(M.from_key_padding_mask(add), expected)
    assert torch.equal(M.from_mha_attn_mask(add), expected)


def test_fp16_hf_mask_upcast_to_float32_converts():
    padding = torch.tensor([[False, False, True]])
    hf = M.to_additive(padding, torch.float16).float()  # -65504 in float32
    assert torch.equal(M.from_additive(hf), padding)
    assert torch.equal(M.from_additive(torch.full((2, 2), -10000.0)), torch.ones(2, 2, dtype=torch.bool))


@pytest.mark.parametrize(
    "bias",
    [
        torch.tensor([[0.0, -1.0, -2.0, -3.0]]),  # ALiBi-like graded distances
        torch.tensor([[0.0, -1.5]]),
        torch.tensor([[0.0, -9999.0]]),  # one value, but not a "very negative" one
        torch.tensor([[0.0, -10000.0, -20000.0]]),  # three distinct values
        torch.tensor([[0.0, -10000.0, float("-inf")]]),
        torch.tensor([[0.0, 10000.0]]),
        torch.tensor([[0.0, float("nan")]]),
    ],
)
def test_genuine_biases_are_still_refused(bias):
    with pytest.raises(ValueError, match="bias"):
        M.from_additive(bias)


# ------------------------------------------------------------------------------------------ convert (G)
def test_padding_to_blocked_needs_b_by_l():
    assert M.padding_to_blocked(torch.zeros(2, 3, dtype=torch.bool)).shape == (2, 1, 1, 3)
    with pytest.raises(ValueError, match=r"padding.*\(B, L\).*\(2, 3, 4\)"):
        M.padding_to_blocked(torch.zeros(2, 3, 4, dtype=torch.bool))


@pytest.mark.parametrize(
    "fn, name",
    [
        (M.from_key_padding_mask, "key_padding_mask"),
        (M.from_mha_attn_mask, "attn_mask"),
        (M.from_hf_attention_mask, "attention_mask"),
        (M.from_additive, "additive"),
    ],
)
def test_numpy_masks_are_refused_naming_the_argument(fn, name):
    with pytest.raises(ValueError, match=rf"{name}.*tensor.*ndarray"):
        fn(np.array([[True]]))


# ------------------------------------------------------------------------------------------ pixels (G)
def test_pixels_from_masked_validates_the_patch_size():
    masked = torch.zeros(1, 4, dtype=torch.bool)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="patch size must be a positive int"):
            pixels_from_masked(masked, bad, (2, 2))
    with pytest.raises(ValueError, match="grid"):
        pixels_from_masked(masked, 2, (2, "2"))


def test_numpy_integer_patch_sizes_are_accepted():
    hidden = torch.zeros(1, 4, 4, dtype=torch.bool)
    hidden[0, 0, 0] = True
    expected = torch.tensor([[True, False, False, False]])
    assert torch.equal(masked_from_pixels(hidden, np.int64(2)), expected)
    assert patch_coverage(hidden, np.int32(2)).shape == (1, 4)
    out = pixels_from_masked(expected, np.int64(2), (np.int64(2), 2))
    assert out.shape == (1, 4, 4) and torch.equal(masked_from_pixels(out, 2), expected)
