"""Patch tokenizer: round trips for any channel count and non-square images, MAE layout, mask conversions."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab.tokenizers.patches import (
    patch_grid,
    patch_mask_from_pixels,
    patchify,
    pixel_mask_from_patches,
    unpatchify,
)


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 5),
    gh=st.integers(1, 4),
    gw=st.integers(1, 4),
    patch=st.integers(1, 5),
)
def test_round_trip_any_channels_non_square(batch, channels, gh, gw, patch):
    images = torch.randn(batch, channels, gh * patch, gw * patch)
    patches = patchify(images, patch)
    assert patches.shape == (batch, gh * gw, patch * patch * channels)
    torch.testing.assert_close(unpatchify(patches, patch, (gh, gw), channels), images, rtol=0, atol=0)


def test_layout_matches_mae_row_col_channel():
    # Patch (r, c) holds pixels [r*p:(r+1)*p, c*p:(c+1)*p] flattened as (row, col, channel): MAE / HF layout.
    images = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    patches = patchify(images, 2)  # grid 2x3
    r, c = 1, 2
    expected = images[0, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].permute(1, 2, 0).reshape(-1)
    torch.testing.assert_close(patches[0, r * 3 + c], expected)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="smaller than one 7x7 patch"):
        patch_grid(5, 28, 7)
    with pytest.raises(ValueError, match="multiples of the patch size 4"):
        patch_grid(30, 28, 4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        patchify(torch.zeros(3, 8, 8), 4)
    with pytest.raises(ValueError, match="do not fit"):
        unpatchify(torch.zeros(1, 5, 16), 4, (2, 2), 1)


def test_pixel_patch_mask_round_trip():
    masked = torch.tensor([[True, False, False, True, False, True]])  # (1, L), grid 2x3
    hidden = pixel_mask_from_patches(masked, 4, (2, 3))
    assert hidden.shape == (1, 8, 12) and hidden.dtype == torch.bool
    assert torch.equal(patch_mask_from_pixels(hidden, 4), masked)


def test_one_hidden_pixel_hides_its_patch():
    hidden = torch.zeros(1, 8, 8, dtype=torch.bool)
    hidden[0, 5, 1] = True  # inside patch (1, 0)
    assert patch_mask_from_pixels(hidden, 4).tolist() == [[False, False, True, False]]
    assert not patch_mask_from_pixels(hidden, 4, min_fraction=0.5).any()
