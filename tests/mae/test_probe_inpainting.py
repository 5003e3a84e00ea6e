"""Generic probe (linear + k-NN on feature arrays) and inpainting metrics / classical baselines."""

import math

import numpy as np
import pytest

from masklab.eval.inpainting import classical_inpaint, mse, psnr
from masklab.eval.probe import format_probe_table, knn_accuracy, linear_probe_accuracy, probe_features


def blobs(n=200, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, d)) * 4
    return centres[y] + rng.normal(size=(n, d)), y


def test_probe_separable_vs_noise():
    x, y = blobs()
    assert linear_probe_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
    assert knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=5) > 0.95
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert knn_accuracy(noise[:150], y[:150], noise[150:], y[150:], k=5) < 0.6


def test_knn_matches_sklearn_cosine_majority_vote():
    from sklearn.neighbors import KNeighborsClassifier

    x, y = blobs(300, 8, seed=3)
    x = x + np.random.default_rng(2).normal(size=x.shape) * 3  # overlapping classes: votes matter
    for k in (1, 7):
        ref = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(x[:200], y[:200])
        expected = float((ref.predict(x[200:]) == y[200:]).mean())
        # sklearn breaks vote ties by class order, we by similarity; allow the rare tie to differ.
        assert knn_accuracy(x[:200], y[:200], x[200:], y[200:], k=k) == pytest.approx(expected, abs=0.03)


def test_probe_input_errors():
    x, y = blobs(20)
    with pytest.raises(ValueError, match="same D"):
        linear_probe_accuracy(x, y, x[:, :2], y)
    with pytest.raises(ValueError, match="integers"):
        knn_accuracy(x, y.astype(float), x, y)
    with pytest.raises(ValueError, match="single class"):
        linear_probe_accuracy(x, np.zeros(20, dtype=int), x, y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_accuracy(bad, y, x, y)


def test_table_format():
    x, y = blobs()
    table = format_probe_table([probe_features("features", x[:150], y[:150], x[150:], y[150:])])
    assert "linear probe" in table and "20-NN" in table and "%" in table


def test_psnr_on_hidden_pixels():
    target = np.zeros((4, 4, 3))
    pred = target.copy()
    hidden = np.zeros((4, 4), dtype=bool)
    hidden[0, 0] = True
    pred[0, 0] = 0.1  # error only where hidden
    assert mse(pred, target, hidden) == pytest.approx(0.01)
    assert psnr(pred, target, hidden) == pytest.approx(20.0)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(1 / (0.01 * 3 / 48)))
    assert psnr(target, target) == math.inf
    with pytest.raises(ValueError, match="selects no pixel"):
        psnr(pred, target, np.zeros((4, 4), dtype=bool))


@pytest.mark.parametrize("method", ["telea", "ns", "biharmonic", "mean"])
@pytest.mark.parametrize("shape", [(16, 16), (16, 16, 3)])
def test_classical_methods_fill_only_hidden_pixels(method, shape):
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    image = (0.3 + 0.4 * xx + 0.2 * yy).reshape(16, 16, *([1] * (len(shape) - 2)))
    image = np.broadcast_to(image, shape).copy()
    hidden = np.zeros((16, 16), dtype=bool)
    hidden[6:10, 6:10] = True
    out = classical_inpaint(image, hidden, method)
    np.testing.assert_array_equal(out[~hidden], image[~hidden])
    # A smooth ramp is easy: every real method beats filling with the mean.
    floor = psnr(classical_inpaint(image, hidden, "mean"), image, hidden)
    assert psnr(out, image, hidden) >= floor - 1e-9


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown inpainting method"):
        classical_inpaint(np.zeros((4, 4)), np.ones((4, 4), dtype=bool), "magic")
