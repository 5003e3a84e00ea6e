"""Pixel mask <-> patch mask conversion on hand-computed cases."""

import pytest
import torch

from masklab.masks.pixels import masked_from_pixels, patch_coverage, pixels_from_masked


def _hidden():
    # 4x6 image, 2x2 patches -> a 2x3 grid (L = 6, row-major).
    h = torch.zeros(1, 4, 6, dtype=torch.bool)
    h[0, 0, 0] = True  # patch 0: 1 of 4 pixels
    h[0, 0:2, 2:4] = True  # patch 1: all 4
    h[0, 2:4, 0] = True  # patch 3: 2 of 4
    h[0, 3, 5] = True  # patch 5: 1 of 4
    h[0, 2, 4] = True  # patch 5: 2 of 4 now
    return h


def test_coverage_by_hand():
    expected = torch.tensor([[0.25, 1.0, 0.0, 0.5, 0.0, 0.5]])
    assert torch.equal(patch_coverage(_hidden(), 2), expected)


def test_threshold_is_strict():
    h = _hidden()
    assert masked_from_pixels(h, 2).tolist() == [[True, True, False, True, False, True]]
    assert masked_from_pixels(h, 2, threshold=0.25).tolist() == [[False, True, False, True, False, True]]
    assert masked_from_pixels(h, 2, threshold=0.5).tolist() == [[False, True, False, False, False, False]]


def test_patches_to_pixels_by_hand():
    masked = torch.tensor([[True, False, False, False, False, True]])
    expected = torch.zeros(1, 4, 6, dtype=torch.bool)
    expected[0, 0:2, 0:2] = True
    expected[0, 2:4, 4:6] = True
    assert torch.equal(pixels_from_masked(masked, 2, (2, 3)), expected)
    assert torch.equal(masked_from_pixels(expected, 2, threshold=0.5), masked)  # round trip


def test_bad_inputs():
    with pytest.raises(ValueError, match="bool tensor"):
        patch_coverage(torch.zeros(1, 4, 4), 2)
    with pytest.raises(ValueError, match="smaller than one 8x8 patch"):
        patch_coverage(torch.zeros(1, 4, 4, dtype=torch.bool), 8)
    with pytest.raises(ValueError, match="multiples"):
        patch_coverage(torch.zeros(1, 5, 4, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="threshold"):
        masked_from_pixels(torch.zeros(1, 4, 4, dtype=torch.bool), 2, threshold=1.0)
    with pytest.raises(ValueError, match="grid has 4"):
        pixels_from_masked(torch.zeros(1, 6, dtype=torch.bool), 2, (2, 2))
