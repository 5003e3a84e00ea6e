"""Frozen-feature evaluation for any modality: linear probe and k-NN accuracy on feature arrays.

Inputs are plain arrays: ``train_x (N, D)``, ``train_y (N,)`` integer labels, ``test_x (M, D)``,
``test_y (M,)``. Nothing here knows about images, text or tables, so every model family reports the same two
numbers the same way:

- **linear probe**: multinomial logistic regression (scikit-learn, L-BFGS) on standardised features, fitted
  on the training split only (the scaler too), scored on the test split (MAE Sec. 4 / Appendix A.2 uses a
  linear classifier on frozen features; standardising stands in for its BatchNorm without affine);
- **k-NN**: majority vote of the ``k`` nearest training examples by cosine similarity, ties broken by the
  summed similarity (the weighted k-NN monitor of Wu et al. 2018 / DINO, with uniform weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeResult:
    """Accuracies in [0, 1] of one feature set; ``dim`` is the feature width."""

    name: str
    linear: float
    knn: float
    dim: int


def _check(train_x, train_y, test_x, test_y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = [np.asarray(a) for a in (train_x, train_y, test_x, test_y)]
    tx, ty, vx, vy = arrays
    if tx.ndim != 2 or vx.ndim != 2 or tx.shape[1] != vx.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D) with the same D, got {tx.shape} and {vx.shape}")
    if ty.shape != (tx.shape[0],) or vy.shape != (vx.shape[0],):
        raise ValueError(f"labels must be (N,) and (M,) matching the features, got {ty.shape} and {vy.shape}")
    if tx.shape[0] < 2 or vx.shape[0] < 1:
        raise ValueError(f"need at least 2 training and 1 test example, got {tx.shape[0]} and {vx.shape[0]}")
    for name, a in (("train labels", ty), ("test labels", vy)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
    for name, a in (("train features", tx), ("test features", vx)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contain NaN or infinity")
    if len(np.unique(ty)) < 2:
        raise ValueError("the training labels hold a single class; a probe needs at least two")
    return tx.astype(np.float64), ty, vx.astype(np.float64), vy


def linear_probe_accuracy(
    train_x, train_y, test_x, test_y, *, C: float = 1.0, max_iter: int = 1000, seed: int = 0
) -> float:
    """Test accuracy of logistic regression fitted on standardised ``train_x`` (scaler fitted on train only)."""
    from sklearn.linear_model import LogisticRegression

    tx, ty, vx, vy = _check(train_x, train_y, test_x, test_y)
    mean, std = tx.mean(axis=0), tx.std(axis=0)
    std[std < 1e-8] = 1.0  # constant features (e.g. MNIST's border pixels) stay 0 instead of dividing by 0
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    clf.fit((tx - mean) / std, ty)
    return float((clf.predict((vx - mean) / std) == vy).mean())


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 20, chunk: int = 1024) -> float:
    """Test accuracy of a ``k``-nearest-neighbour vote by cosine similarity."""
    tx, ty, vx, vy = _check(train_x, train_y, test_x, test_y)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(tx))
    tx = tx / np.maximum(np.linalg.norm(tx, axis=1, keepdims=True), 1e-12)
    vx = vx / np.maximum(np.linalg.norm(vx, axis=1, keepdims=True), 1e-12)
    classes, ty_index = np.unique(ty, return_inverse=True)
    correct = 0
    for start in range(0, len(vx), chunk):
        sim = vx[start : start + chunk] @ tx.T  # (m, N)
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]  # (m, k) unordered k nearest
        votes = np.zeros((len(sim), len(classes)))
        rows = np.arange(len(sim))[:, None]
        np.add.at(votes, (rows, ty_index[top]), 1.0)
        np.add.at(votes, (rows, ty_index[top]), 1e-6 * sim[rows, top])  # tie-break by similarity
        correct += int((classes[votes.argmax(axis=1)] == vy[start : start + chunk]).sum())
    return correct / len(vx)


def probe_features(name: str, train_x, train_y, test_x, test_y, *, k: int = 20, seed: int = 0) -> ProbeResult:
    """Linear-probe and k-NN accuracy of one feature set."""
    linear = linear_probe_accuracy(train_x, train_y, test_x, test_y, seed=seed)
    knn = knn_accuracy(train_x, train_y, test_x, test_y, k=k)
    return ProbeResult(name, linear, knn, int(np.asarray(train_x).shape[1]))


def format_probe_table(results: Sequence[ProbeResult], *, k: int = 20) -> str:
    """A plain-text table: one row per feature set, accuracies in percent."""
    width = max(len("features"), *(len(r.name) for r in results))
    lines = [f"{'features':<{width}}  {'dim':>5}  {'linear probe':>12}  {f'{k}-NN':>8}"]
    lines += [f"{r.name:<{width}}  {r.dim:>5}  {100 * r.linear:>11.2f}%  {100 * r.knn:>7.2f}%" for r in results]
    return "\n".join(lines)
