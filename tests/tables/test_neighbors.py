"""Neighbour distances of the anomaly detector against scikit-learn (float64, full matrices)."""

import numpy as np
import torch

from masklab.estimators.neighbors import Reference, neighbor_distance, robust_scale


def _reference(values, categories, missing, cards):
    return Reference(torch.as_tensor(values, dtype=torch.float64), torch.as_tensor(categories),
                     torch.as_tensor(missing), torch.as_tensor(cards))  # fmt: skip


def _kth_without_self(distances: np.ndarray, k: int) -> np.ndarray:
    """The k-th smallest distance of each row to the *other* rows (its own column dropped)."""
    n = len(distances)
    others = distances[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    return np.sort(others, axis=1)[:, k - 1]


def _design(numeric: np.ndarray, kinds: np.ndarray, cards: int) -> np.ndarray:
    """The baselines' design matrix: numeric cells (NaN -> 0, the standardised mean), one-hot categories with
    a slot for a missing one (``kinds`` -1)."""
    slots = np.eye(cards + 1)[np.where(kinds < 0, cards, kinds)]
    return np.column_stack([np.nan_to_num(numeric), slots])


def test_rows_with_missing_cells_match_the_mean_imputed_one_hot_design():
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(70, 3))
    numeric[rng.random(numeric.shape) < 0.25] = np.nan
    kinds = rng.integers(0, 3, size=70)
    kinds[rng.random(70) < 0.2] = -1  # missing category
    missing = np.column_stack([np.isnan(numeric), kinds < 0])
    values = np.column_stack([np.nan_to_num(numeric), np.zeros(70)])
    categories = np.column_stack([np.zeros((70, 3), dtype=np.int64), np.maximum(kinds, 0)])
    reference = _reference(values, categories, missing, np.array([0, 0, 0, 3]))
    distance, parts = neighbor_distance(torch.as_tensor(values), torch.as_tensor(categories),
                                        torch.as_tensor(missing), reference, k=5)  # fmt: skip
    design = _design(numeric, kinds, 3)
    full = np.sqrt(((design[:, None, :] - design[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(distance, _kth_without_self(full, 5), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(parts.sum(1), distance, rtol=1e-9)  # the parts add up to the distance
    # A row that is not in the reference keeps all its neighbours (nothing identical to drop).
    new = values[:1] + np.array([[0.5, -0.25, 0.0, 0.0]])
    new_missing = np.zeros((1, 4), dtype=bool)
    d_new, _ = neighbor_distance(torch.as_tensor(new), torch.as_tensor(categories[:1]),
                                 torch.as_tensor(new_missing), reference, k=3)  # fmt: skip
    new_design = _design(new[:, :3], np.array([categories[0, 3]]), 3)
    to_all = np.sqrt(((new_design - design) ** 2).sum(-1))
    np.testing.assert_allclose(d_new, np.sort(to_all)[2:3], rtol=1e-9)


def test_duplicates_count_as_neighbours_except_the_row_itself():
    values = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [3.0, 4.0]])
    reference = _reference(values, np.zeros((4, 2), dtype=np.int64), np.zeros((4, 2), dtype=bool), np.zeros(2, int))
    distance, _ = neighbor_distance(torch.as_tensor(values), torch.zeros(4, 2, dtype=torch.long),
                                    torch.zeros(4, 2, dtype=torch.bool), reference, k=2)  # fmt: skip
    # Rows 0-2: two other identical rows -> 0; row 3: its 2nd nearest other row is at distance 5.
    np.testing.assert_allclose(distance, [0.0, 0.0, 0.0, 5.0])


def test_robust_scale():
    assert robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan])) == 2.0
    assert robust_scale(np.array([0.0] * 9 + [10.0])) == np.array([0.0] * 9 + [10.0]).std()
    assert robust_scale(np.zeros(5)) == 1.0
