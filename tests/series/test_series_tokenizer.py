"""Patches, instance normalisation and tail masking against hand-built references."""

from __future__ import annotations

import pytest
import torch

from masklab.masks.tail import tail_masking
from masklab.tokenizers.series import instance_norm, num_patches, patch_padding, patchify, unpatchify


@pytest.mark.parametrize(("length", "p", "s", "expected"), [(8, 4, 4, 2), (9, 4, 4, 3), (3, 4, 4, 1), (9, 4, 2, 4)])
def test_num_patches_covers_every_step(length: int, p: int, s: int, expected: int) -> None:
    assert num_patches(length, p, s) == expected
    assert (expected - 1) * s + p >= length


def test_patchify_matches_a_loop_and_unpatchify_inverts_it() -> None:
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    for p, s in ((4, 4), (4, 2), (3, 1)):
        patches = patchify(x, p, s)
        L = num_patches(11, p, s)
        assert patches.shape == (2, 3, L, p)
        padded = torch.cat([x, x.new_zeros(2, 20, 3)], dim=1)
        for ll in range(L):
            torch.testing.assert_close(patches[:, :, ll], padded[:, ll * s : ll * s + p].transpose(1, 2))
        torch.testing.assert_close(unpatchify(patches, 11, s), x)


def test_patch_padding_counts_each_rows_own_patches() -> None:
    padding = torch.arange(12)[None, :] >= torch.tensor([[12], [5], [1]])  # lengths 12, 5, 1
    assert patch_padding(padding, 4, 4).tolist() == [[False] * 3, [False, False, True], [False, True, True]]
    assert (~patch_padding(padding, 4, 2)).sum(dim=1).tolist() == [5, 2, 1]


def test_instance_norm_matches_float64_reference() -> None:
    x = torch.randn(3, 10, 2, dtype=torch.float64) * 4 + 7
    weight = torch.rand(3, 10, 2) > 0.3
    out = instance_norm(x, weight)
    for b in range(3):
        for c in range(2):
            real = x[b, weight[b, :, c], c]
            mean, var = real.mean(), real.var(unbiased=False)
            torch.testing.assert_close(out.loc[b, 0, c], mean)
            torch.testing.assert_close(out.scale[b, 0, c], torch.sqrt(var + 1e-5))
    torch.testing.assert_close(out.invert(out.normed), x)


def test_tail_masking_hides_each_rows_last_real_tokens() -> None:
    padding = torch.arange(6)[None, :] >= torch.tensor([[6], [4], [2], [1]])
    masked = tail_masking(4, 6, 2, padding=padding).masked
    expected = [[0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert masked.int().tolist() == expected  # a row keeps keep_first=1 visible token
    assert tail_masking(1, 5, 2).masked.int().tolist() == [[0, 0, 0, 1, 1]]
    with pytest.raises(ValueError, match="count"):
        tail_masking(1, 5, -1)


def test_the_registry_tail_strategy_is_tail_masking() -> None:
    from masklab.masks.strategies import MaskRequest, draw_mask

    padding = torch.arange(6)[None, :] >= torch.tensor([[6], [4], [2], [1]])
    direct = tail_masking(4, 6, 2, padding=padding).masked
    drawn = draw_mask("tail", MaskRequest(4, 6, 0.5, protected=padding, options={"count": 2}))
    assert torch.equal(drawn.masked, direct)
    # Without a count the tail is as long as the random strategy's hidden share: 6 - int(6 * 0.5) = 3.
    assert draw_mask("tail", MaskRequest(1, 6, 0.5)).masked.int().tolist() == [[0, 0, 0, 1, 1, 1]]
