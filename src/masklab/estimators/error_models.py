"""How a numeric cell's squared error enters an anomaly score: Gaussian (the error itself) or Cauchy
(``log1p`` of it), chosen per column by maximum likelihood on the training rows' residuals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def cauchy_fits_better(squared: np.ndarray) -> bool:
    """Does a Cauchy law fit these residuals better than a Gaussian (maximum likelihood of each, scale fitted)?

    ``squared``: squared residuals ``(N,)`` (NaN = none). Gaussian: ``sigma^2 = mean``, mean log-likelihood
    ``-0.5 * (log(2 pi sigma^2) + 1)``; Cauchy: ``-log(pi gamma) - mean(log1p(r^2 / gamma^2))`` maximised over
    ``log gamma``. Fewer than 8 residuals, or all zero: False (keep the squared error)."""
    from scipy.optimize import minimize_scalar

    squared = squared[np.isfinite(squared)]
    if len(squared) < 8 or not squared.max() > 0:
        return False
    gaussian = -0.5 * (math.log(2 * math.pi * squared.mean()) + 1.0)
    top = 0.5 * math.log(squared.max()) + 1.0

    def cauchy_nll(log_gamma: float) -> float:
        return float(np.mean(np.log1p(squared * math.exp(-2.0 * log_gamma))) + log_gamma)

    best = minimize_scalar(cauchy_nll, bounds=(top - 40.0, top), method="bounded")
    return bool(-math.log(math.pi) - best.fun > gaussian)


def choose_error_models(raw: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """``bool (R, C)``: True where a (score ratio, column) is scored by ``log1p`` (Cauchy). ``raw (R, N, C)``
    errors of the training rows; ``numeric bool (C,)`` (categorical cells are cross-entropies: never)."""
    return np.array([[bool(j) and cauchy_fits_better(r[:, c]) for c, j in enumerate(numeric)] for r in raw])


def apply_error_models(raw: np.ndarray, cauchy: np.ndarray) -> np.ndarray:
    """``raw (R, N, C)`` errors -> ``log1p`` where ``cauchy (R, C)`` is True (the Cauchy negative log-likelihood
    of a squared residual in standardised units, up to a constant), unchanged elsewhere."""
    return np.where(cauchy[:, None, :], np.log1p(np.where(cauchy[:, None, :], raw, 0.0)), raw)


def read_scoring(path: Path) -> dict:
    """A table run's ``scoring.json`` (error models, scales, threshold, masks' seed), checked: a file that is not
    JSON or lacks a key scoring needs is a ``ValueError`` naming it."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); retrain the run to rewrite it") from None
    needed = ("n_masks", "seed_", "threshold_", "score_ratios")
    if not isinstance(state, dict) or any(key not in state for key in needed):
        raise ValueError(f"{path}: not a table run's scoring state (needs {', '.join(needed)})")
    return state
