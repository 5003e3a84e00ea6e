"""The "em" baseline of bench/imputation.py (a Gaussian fitted by EM, each cell's conditional mean):
conditional means against explicit float64 algebra, EM against the sample moments and a known Gaussian."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

_spec = importlib.util.spec_from_file_location(
    "bench_imputation", Path(__file__).parents[2] / "bench" / "imputation.py"
)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
conditional_mean, fit_gaussian = bench.conditional_mean, bench.fit_gaussian


def _random_cov(c: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(c, c))
    return a @ a.T / c + 0.1 * np.eye(c)


def test_conditional_mean_matches_the_textbook_formula_row_by_row():
    rng = np.random.default_rng(0)
    c = 6
    cov, mean = _random_cov(c, 1), rng.normal(size=c)
    values = rng.normal(size=(50, c))
    hidden = rng.random((50, c)) < 0.5
    hidden[0] = True  # nothing visible: the mean
    hidden[1] = False  # everything visible: the values themselves
    numeric = torch.ones(c, dtype=torch.bool)
    got = conditional_mean(torch.tensor(mean), torch.tensor(cov), torch.tensor(values), torch.tensor(hidden), numeric,
                           ridge=0.0).numpy()  # fmt: skip
    for i in range(50):
        v, h = ~hidden[i], hidden[i]
        expected = values[i].copy()
        if v.any():
            expected[h] = mean[h] + cov[np.ix_(h, v)] @ np.linalg.solve(cov[np.ix_(v, v)], values[i, v] - mean[v])
        else:
            expected[h] = mean[h]
        np.testing.assert_allclose(got[i], expected, rtol=1e-9, atol=1e-9)


def test_conditional_mean_ignores_categorical_columns():
    cov = torch.tensor(_random_cov(4, 2))
    values = torch.randn(8, 4, dtype=torch.float64)
    hidden = torch.zeros(8, 4, dtype=torch.bool)
    hidden[:, 0] = True
    numeric = torch.tensor([True, True, False, True])
    got = conditional_mean(torch.zeros(4, dtype=torch.float64), cov, values, hidden, numeric, ridge=0.0)
    assert torch.all(got[:, 2] == 0)
    v = [1, 3]  # column 2 is not a predictor even though it is visible
    expected = cov[0, v] @ torch.linalg.solve(cov[v][:, v], values[:, v].T)
    torch.testing.assert_close(got[:, 0], expected, rtol=1e-9, atol=1e-9)


def test_em_on_complete_data_is_the_sample_mean_and_covariance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    mean, cov = fit_gaussian(torch.tensor(x), torch.zeros(x.shape, dtype=torch.bool), torch.ones(5, dtype=torch.bool))
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cov.numpy(), np.cov(x.T, ddof=0), rtol=1e-4, atol=1e-4)


def test_em_recovers_a_gaussian_from_cells_missing_at_random():
    rng = np.random.default_rng(4)
    true_cov, true_mean = _random_cov(5, 5), np.array([1.0, -1.0, 0.5, 0.0, 2.0])
    x = rng.multivariate_normal(true_mean, true_cov, size=20_000)
    missing = rng.random(x.shape) < 0.4
    numeric = torch.ones(5, dtype=torch.bool)
    mean, cov = fit_gaussian(torch.tensor(np.where(missing, 0.0, x)), torch.tensor(missing), numeric)
    np.testing.assert_allclose(mean.numpy(), true_mean, atol=0.05)
    np.testing.assert_allclose(cov.numpy(), true_cov, atol=0.06)
    # The fitted Gaussian is a proper one (positive definite), which the pairwise estimate need not be.
    assert float(torch.linalg.eigvalsh(cov.double()).min()) > 0


def test_em_imputer_fills_only_missing_cells_and_beats_the_column_mean():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 6)) + 0.2 * rng.normal(size=(400, 6))
    hidden = rng.random(x.shape) < 0.3
    filled = bench.GaussianEMImputer().fit_transform(np.where(hidden, np.nan, x))
    np.testing.assert_array_equal(filled[~hidden], x[~hidden])
    rmse = np.sqrt(np.mean((filled[hidden] - x[hidden]) ** 2))
    mean_fill = np.sqrt(
        np.mean((np.nanmean(np.where(hidden, np.nan, x), 0)[None, :].repeat(400, 0)[hidden] - x[hidden]) ** 2)
    )
    assert rmse < 0.5 * mean_fill
