"""``grid_cell``: a ratio that is not ``1 - 1/k²`` is refused with the exact ratios this grid accepts."""

import pytest

from masklab.masks import grid_cell


def test_accepts_the_exact_ratios_within_the_documented_tolerance():
    assert grid_cell(1 - 1 / 9, (12, 12)) == 3
    assert grid_cell(1 - 1 / 9 + 5e-7, (12, 12)) == 3  # within 1e-6
    assert grid_cell(0.75, (12, 12)) == 2


def test_a_rounded_ratio_is_refused_with_the_accepted_values_in_full():
    with pytest.raises(ValueError) as err:
        grid_cell(0.888, (12, 12))
    message = str(err.value)
    # The k that divide 12 (2, 3, 4, 6, 12), each ratio with all its digits, and the tolerance.
    for k in (2, 3, 4, 6, 12):
        assert f"{1 - 1 / k**2!r} (k={k})" in message, message
    assert "(k=5)" not in message and "1e-06" in message and "0.888" in message
    assert "…" not in message


def test_a_cell_that_does_not_divide_the_grid_names_the_ones_that_do():
    with pytest.raises(ValueError, match=r"divisible by 3, got 8x8.*0\.75 \(k=2\)"):
        grid_cell(1 - 1 / 9, (8, 8))
    with pytest.raises(ValueError, match="no k >= 2 divides both sides of 7x5"):
        grid_cell(0.75, (7, 5))
