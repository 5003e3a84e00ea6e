"""Boundary F at the image border: outside the image is background (DAVIS seg2bmap). With edge padding a
full-image prediction of an empty target scored 1.0, and a near-perfect one 0.0."""

import numpy as np
import pytest

from masklab.eval.segmentation import boundary_f, segmentation_scores


def _reference(pred: np.ndarray, target: np.ndarray, tolerance: int) -> float:
    """Boundary F by plain loops: a boundary pixel is a subject pixel with a 4-neighbour (or the outside of
    the image) that is background; matches within ``tolerance`` pixels (Chebyshev distance)."""

    def boundary(m):
        H, W = m.shape
        out = np.zeros_like(m)
        for y in range(H):
            for x in range(W):
                if m[y, x]:
                    nbrs = [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)]
                    out[y, x] = any(not (0 <= a < H and 0 <= b < W) or not m[a, b] for a, b in nbrs)
        return out

    def matched(b, other):
        ys, xs = np.nonzero(other)
        return sum(
            bool(((abs(ys - y) <= tolerance) & (abs(xs - x) <= tolerance)).any())
            for y, x in zip(*np.nonzero(b), strict=True)
        )

    scores = []
    for p, t in zip(pred, target, strict=True):
        bp, bt = boundary(p), boundary(t)
        if not bp.any() and not bt.any():
            scores.append(1.0 if np.array_equal(p, t) else 0.0)
            continue
        precision = matched(bp, bt) / bp.sum() if bp.any() else 0.0
        recall = matched(bt, bp) / bt.sum() if bt.any() else 0.0
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def test_border_cases():
    none, full = np.zeros((1, 16, 16), bool), np.ones((1, 16, 16), bool)
    assert boundary_f(full, none) == 0.0 == boundary_f(none, full)
    assert boundary_f(none, none) == 1.0 and boundary_f(full, full) == 1.0
    missing_top = full.copy()
    missing_top[:, 0] = False
    assert boundary_f(missing_top, full) == pytest.approx(1.0)
    assert segmentation_scores(full, none)["boundary_f"] == 0.0
    left = np.zeros((1, 16, 16), bool)
    left[:, :, :8] = True  # touches three borders
    assert boundary_f(left, left) == 1.0
    assert boundary_f(left, ~left) < 0.5


@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_matches_a_plain_reference_on_whole_arrays(tolerance):
    rng = np.random.default_rng(tolerance)
    target = np.zeros((6, 12, 14), bool)
    for i in range(6):
        y, x = rng.integers(-3, 10, 2)
        target[i, max(y, 0) : y + 6, max(x, 0) : x + 7] = True  # some touch the border
    pred = target ^ (rng.random(target.shape) < 0.08)
    pred[0], target[1] = True, False
    assert boundary_f(pred, target, tolerance) == pytest.approx(_reference(pred, target, tolerance))
