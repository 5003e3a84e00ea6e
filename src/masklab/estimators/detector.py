"""MaskedAnomalyDetector: unsupervised anomaly scores from masked reconstruction, with per-cell explanations."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import OutlierMixin
from sklearn.utils.validation import _num_samples, check_is_fitted

from masklab.estimators.base import _TableEstimator, user_stacklevel
from masklab.estimators.budget import detector_steps
from masklab.estimators.error_models import apply_error_models, choose_error_models, read_scoring
from masklab.estimators.neighbors import (
    REFERENCE_ROWS,
    Reference,
    check_neighbors,
    neighbor_distance,
    robust_scale,
)
from masklab.models.table.model import reconstruction_errors
from masklab.tokenizers.table import EncodedTable

# Masking scales of the score: a cell is hidden with round(r * C) columns and predicted from the rest of its
# row; r = 1 hides the whole row (the error against the model's unconditional guess).
SCORE_RATIOS = (0.25, 0.5, 0.75, 1.0)
FIT_SCORE_ROWS = 2048  # training rows (a seeded sample) scored by fit: refit's inliers, error models, threshold
SCORING_FILE = "scoring.json"  # what a run needs to score like the estimator (written by calibrate_run)
REFERENCE_FILE = "scoring.safetensors"  # a run's neighbour rows (written by calibrate_run when neighbors > 0)


def _row_scores(contributions: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """A row's score is the sum of its cells' parts ``(N, C)``; NaN for a row with no observed cell in
    ``errors (R, N, C)`` (nothing to judge it by)."""
    scores = contributions.sum(axis=1)
    scores[~np.isfinite(errors).any(axis=(0, 2))] = np.nan
    return scores


def _rows(X, index: np.ndarray):
    return X.iloc[index] if hasattr(X, "iloc") else np.asarray(X)[index]


class MaskedAnomalyDetector(OutlierMixin, _TableEstimator):
    """Unsupervised anomaly scores from masked reconstruction and neighbours: is each cell surprising given its
    row, and is the row unlike the training rows?

    ``anomaly_score(X)`` (higher = more anomalous) adds two terms, each divided by its interquartile range
    over the training rows (``score_scales_``). The first averages, over the masking scales
    ``SCORE_RATIOS`` (0.25, 0.5, 0.75, 1), a row's mean over its observed cells of the cell's reconstruction
    error: at scale r each
    cell is hidden in ``n_masks`` rounds of random column groups of ``round(r * C)`` columns and predicted
    from the rest of its row. Several scales because anomalies differ: a row can be odd given its other
    cells (low r), or odd on its own (high r). A numeric cell's error is its squared error in standardised
    units (Gaussian) or ``log1p`` of it (Cauchy, heavy-tailed), whichever law fits that column's residuals on
    the training rows better by maximum likelihood (``cauchy_ bool (R, C)``); a categorical cell's is its
    cross-entropy. The second (``neighbors`` = k > 0) is the row's distance to its k-th nearest training row
    (:mod:`masklab.estimators.neighbors`: standardised numeric cells, categories one-hot; a missing numeric
    cell counts as the column's mean, a missing category as a category of its own): it catches rows whose
    cells fit each other but lie where no training row does. :meth:`explain` says which cells made a row's
    score (both terms split over the cells) and what the model expected there.

    :meth:`fit` trains a small model briefly (a detector trained on contaminated rows must not learn to
    reconstruct its anomalies). With ``refit`` (default) it trains half its steps on all rows, scores a
    sample of them, and trains the other half on that sample's rows at or below the ``1 - contamination``
    quantile (the presumed inliers; ``n_refit_rows_``); turn it off when the training rows are known to be
    clean. :meth:`calibrate` then picks the error models and ``threshold_`` on a sample of the training rows.

    preset: ``table-tiny`` | ``table-small``; steps: optimizer steps in all (None =
    :func:`~masklab.estimators.budget.detector_steps`; >= 2 with refit); batch_size, lr: AdamW (5% warmup +
    cosine); n_masks: rounds of column groups per scale at scoring; neighbors: k of the neighbour term (with
    k > 0 the fitted detector keeps the training rows, a seeded sample of ``REFERENCE_ROWS`` if more, as
    ``reference_``; 0 = off: the score is the reconstruction term alone, unscaled); contamination: the
    expected share of anomalies, in (0, 0.5] (IsolationForest's ``"auto"`` is an offset on its own score's
    scale and is refused); threshold: a fixed score threshold (default: the ``1 - contamination`` quantile of
    the training scores); categorical: columns to force categorical; handle_unknown: ``error`` | ``missing``
    for categories unseen in training; random_state: int seed, a numpy ``RandomState`` to draw it from, or
    None (fresh); device: ``cpu`` | ``cuda`` | ``auto``; verbose.

    scikit-learn's sign convention: ``score_samples = -anomaly_score`` (lower = more abnormal),
    ``decision_function = score_samples - offset_`` (negative = outlier), ``predict`` -1 = outlier, 1 = inlier.
    Benchmarks: ``docs/benchmarks.md`` (``bench/anomaly.py``).
    """

    def __init__(
        self,
        preset: str = "table-tiny",
        *,
        steps: int | None = None,
        batch_size: int = 256,
        lr: float = 2e-3,
        n_masks: int = 1,
        neighbors: int = 5,
        refit: bool = True,
        contamination: float = 0.1,
        threshold: float | None = None,
        categorical: list[str] | None = None,
        handle_unknown: str = "error",
        random_state: int | None = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.n_masks = n_masks
        self.neighbors = neighbors
        self.refit = refit
        self.contamination = contamination
        self.threshold = threshold
        self.categorical = categorical
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _default_steps(self, n_rows: int, batch_size: int) -> int:
        return detector_steps(n_rows, batch_size)

    def _check_params(self) -> None:
        super()._check_params()
        if not (isinstance(self.n_masks, (int, np.integer)) and self.n_masks >= 1):
            raise ValueError(f"n_masks must be an int >= 1 for anomaly scores, got {self.n_masks!r}")
        check_neighbors(self.neighbors)
        share = self.contamination  # "auto" (IsolationForest's offset on its own score scale) has no meaning here
        number = isinstance(share, (int, float, np.integer, np.floating)) and not isinstance(share, (bool, np.bool_))
        if (self.threshold is None or self.refit) and not (number and 0.0 < share <= 0.5):
            raise ValueError(f"contamination must be a number in (0, 0.5] (the expected share of anomalies), got "
                             f"{share!r}")  # fmt: skip
        if self.refit and self.steps is not None and self.steps < 2:
            raise ValueError(f"steps must be >= 2 with refit=True (half the steps on all rows, half on the presumed "
                             f"inliers), got {self.steps!r}; pass refit=False to train a single step")  # fmt: skip

    # ------------------------------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Train the model, then :meth:`calibrate` on a sample of the training rows (class doc).

        X: DataFrame ``(N, C)`` (numeric and categorical columns; dates, times and durations are refused) or
        numeric / bool array ``(N, C)``; missing cells are NaN / None / NA / empty strings. y: ignored.
        Returns ``self`` (fitted: ``model_``, ``schema_``, ``threshold_``, ``offset_``, ``cauchy_``,
        ``score_scales_``, ``reference_``, ``n_refit_rows_``, ``n_steps_`` = ``steps``, ...)."""
        self._check_params()
        n_rows = _num_samples(X)
        batch = min(self.batch_size, n_rows)
        total = detector_steps(n_rows, batch) if self.steps is None else int(self.steps)
        if not self.refit:
            self._fit_model(X, steps=total)
            self.n_refit_rows_ = None
        else:  # train on all rows, then continue on the rows the first half calls inliers
            first = total // 2  # total >= 2 (checked): both halves train
            self._fit_model(X, steps=first)
            sample = _rows(X, self._sample(n_rows))
            scores = self._aggregate(self._errors(self._raw_errors(sample), choose=True))
            inliers = scores <= np.nanquantile(scores, 1.0 - self.contamination)  # NaN (no observed cell): out
            self._fit_model(_rows(sample, np.flatnonzero(inliers)), steps=total - first, initial=self.model_)
            self.n_refit_rows_ = int(inliers.sum())
        self.reference_ = self._reference(X) if self.neighbors else None
        return self.calibrate(_rows(X, self._sample(n_rows)))

    def _reference(self, X) -> Reference:
        """The neighbour rows: ``X`` encoded, a seeded sample of :data:`REFERENCE_ROWS` rows if larger."""
        n_rows = _num_samples(X)
        if n_rows > REFERENCE_ROWS:
            X = _rows(X, np.sort(np.random.default_rng(self.seed_ + 1).choice(n_rows, REFERENCE_ROWS, replace=False)))
        if self.neighbors > n_rows:
            warnings.warn(f"neighbors={self.neighbors} but there are only {n_rows} training rows: the neighbour "
                          "term uses each row's farthest one", stacklevel=user_stacklevel())  # fmt: skip
        _, _, encoded = self._encode(X)
        cards = torch.tensor(self.schema_.cardinalities, dtype=torch.long)
        return Reference(encoded.values.double(), encoded.categories, encoded.missing, cards)

    def _sample(self, n_rows: int) -> np.ndarray:
        """Sorted row indices of at most :data:`FIT_SCORE_ROWS` training rows (seeded)."""
        if n_rows <= FIT_SCORE_ROWS:
            return np.arange(n_rows)
        return np.sort(np.random.default_rng(self.seed_).choice(n_rows, FIT_SCORE_ROWS, replace=False))

    def calibrate(self, X) -> MaskedAnomalyDetector:
        """Choose the error models (``cauchy_``), the terms' scales (``score_scales_``) and ``threshold_`` on
        rows ``X`` (training rows: the threshold is their ``1 - contamination`` quantile unless ``threshold``
        is given). :meth:`fit` calls it; call it on a :meth:`from_run` detector to score like a fitted one."""
        self._check_params()
        _, _, encoded = self._encode(X)
        errors = self._errors(self._encoded_errors(encoded), choose=True)
        neighbors = None
        self.score_scales_ = (1.0, 1.0)
        if self.reference_ is not None:  # each term divided by its spread over these rows
            neighbors = self._neighbors(encoded)
            self.score_scales_ = (robust_scale(self._aggregate(errors)), robust_scale(neighbors[0]))
        scores = self._aggregate(errors, neighbors)
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(np.nanquantile(scores, 1.0 - self.contamination))
        self.offset_ = -self.threshold_
        return self

    # --------------------------------------------------------------------------------------- scoring
    def _neighbors(self, encoded: EncodedTable) -> tuple[np.ndarray, np.ndarray]:
        """Distance of each encoded row to its ``neighbors``-th nearest reference row ``(N,)`` and each cell's
        part of it ``(N, C)`` (see :func:`~masklab.estimators.neighbors.neighbor_distance`)."""
        if self.reference_ is None:
            raise ValueError("this detector keeps no neighbour rows (neighbors=0)")
        return neighbor_distance(encoded.values, encoded.categories, encoded.missing, self.reference_, self.neighbors)

    def _raw_errors(self, X) -> np.ndarray:
        """Squared errors / cross-entropies of every cell at every scale ``(R, N, C)`` (NaN where missing)."""
        return self._encoded_errors(self._encode(X)[2])

    def _encoded_errors(self, encoded: EncodedTable) -> np.ndarray:
        """:meth:`_raw_errors` of rows already encoded."""
        out = []
        for ratio in SCORE_RATIOS:
            patterns = self._patterns(ratio)
            errors = reconstruction_errors(self.model_, encoded.values, encoded.categories, encoded.missing, patterns)
            out.append(errors.numpy())
        return np.stack(out)

    def _errors(self, raw: np.ndarray, *, choose: bool = False) -> np.ndarray:
        """Apply the error models (choosing them on ``raw`` first when ``choose``)."""
        if choose:
            numeric = np.array([spec.kind == "numeric" for spec in self.schema_.columns])
            self.cauchy_ = choose_error_models(raw, numeric)
        return apply_error_models(raw, self.cauchy_)

    def _contributions(self, errors: np.ndarray, neighbors: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> np.ndarray:  # fmt: skip
        """Each cell's part of its row's score ``(N, C)`` (0 where missing); a row's parts sum to its score.
        ``errors (R, N, C)``; ``neighbors``: :meth:`_neighbors` of the same rows (None: the reconstruction
        term alone, unscaled)."""
        observed = np.isfinite(errors)  # (R, N, C)
        per_cell = np.where(observed, errors, 0.0) / np.maximum(observed.sum(axis=2, keepdims=True), 1)
        parts = per_cell.mean(axis=0)  # a row with no observed cell: all 0 (its score is NaN, see _aggregate)
        if neighbors is None:
            return parts
        recon_scale, neighbor_scale = self.score_scales_
        return parts / recon_scale + neighbors[1] / neighbor_scale

    def _aggregate(self, errors: np.ndarray, neighbors: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Row scores ``(N,)``; NaN for a row with no observed cell (nothing to judge it by)."""
        return _row_scores(self._contributions(errors, neighbors), errors)

    def _scores_and_parts(self, encoded: EncodedTable) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (N,), contributions (N, C))`` of encoded rows as the fitted detector scores them."""
        errors = self._errors(self._encoded_errors(encoded))
        neighbors = self._neighbors(encoded) if self.reference_ is not None else None
        parts = self._contributions(errors, neighbors)
        return _row_scores(parts, errors), parts

    def cell_errors(self, X) -> np.ndarray:
        """Error of every cell at every scale ``(R, N, C)`` (NaN where missing): squared error (standardised
        units) or its ``log1p`` where ``cauchy_`` says so; cross-entropy for categorical cells."""
        check_is_fitted(self)
        return self._errors(self._raw_errors(X))

    def anomaly_score(self, X) -> np.ndarray:
        """Anomaly score per row ``(N,)`` (class doc); higher = more anomalous. A row whose every cell is
        missing has no score: NaN, with a ``UserWarning`` counting such rows."""
        scores, _ = self._scores_and_parts(self._encode(X)[2])
        empty = int(np.isnan(scores).sum())
        if empty:
            warnings.warn(f"{empty} row(s) have no observed cell: their anomaly score is NaN",
                          stacklevel=user_stacklevel())  # fmt: skip
        return scores

    def score_samples(self, X) -> np.ndarray:
        """``-anomaly_score(X)``: scikit-learn's sign (the lower, the more abnormal)."""
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for outliers (anomaly score above ``threshold_``), 1 for inliers (and for rows with no observed
        cell, whose score is NaN: nothing flags them)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def explain(self, X, *, top: int | None = None):
        """Which cells make each row's score: a long DataFrame, one line per (row, observed cell), ranked.

        Columns: ``row`` (0-based position in ``X``), ``anomaly_score``, ``rank`` (1 = the cell contributing
        most), ``column``, ``observed``, ``expected`` (the model's prediction for the cell from the rest of
        its row at the smallest scale, in original units; the most likely category for categorical cells),
        ``contribution`` (the cell's part of the score; a row's parts sum to its score) and ``share``
        (contribution / score). ``top``: keep each row's ``top`` cells only (an int >= 1; None = all).
        ``expected`` is what :class:`~masklab.estimators.MaskedImputer` would fill: whole numbers in a
        DataFrame's whole-number columns, the column's own values (bools, ints) in categorical ones."""
        from masklab.estimators.explain import explain_rows

        if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
            raise ValueError(f"top must be an int >= 1 (cells kept per row) or None for all, got {top!r}")
        check_is_fitted(self)
        frame, was_frame, encoded = self._encode(X)
        _, contributions = self._scores_and_parts(encoded)
        patterns = self._patterns(SCORE_RATIOS[0])
        return explain_rows(self, frame, encoded, contributions, patterns, top=top, round_integers=was_frame)

    # --------------------------------------------------------------------------------- save / load
    def _fitted_state(self) -> dict:
        state = {**super()._fitted_state(), "threshold_": self.threshold_, "offset_": self.offset_}
        return {**state, "cauchy_": self.cauchy_.tolist(), "n_refit_rows_": self.n_refit_rows_,
                "score_scales_": list(self.score_scales_)}  # fmt: skip

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        if self.reference_ is None:
            return {}
        return {f"reference.{k}": v for k, v in self.reference_.tensors().items()}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """The neighbour rows saved with the weights; a detector saved before the neighbour term had none,
        and scores as it did then (``neighbors`` 0)."""
        found = {k.removeprefix("reference."): v for k, v in tensors.items() if k.startswith("reference.")}
        self.reference_ = Reference.from_tensors(found) if found else None
        if self.reference_ is None:
            self.neighbors = 0

    def _restore_state(self, state: dict) -> None:
        super()._restore_state(state)
        if "cauchy_" in state:
            self.cauchy_ = np.asarray(state["cauchy_"], dtype=bool).reshape(len(SCORE_RATIOS), -1)
        recon_scale, neighbor_scale = state.get("score_scales_", (1.0, 1.0))
        self.score_scales_ = (float(recon_scale), float(neighbor_scale))

    def scoring_state(self) -> dict:
        """What scoring needs besides the model weights (JSON-able): error models, threshold, masks."""
        check_is_fitted(self)
        return {"n_masks": int(self.n_masks), "seed_": self.seed_, "cauchy_": self.cauchy_.tolist(),
                "threshold_": self.threshold_, "score_ratios": list(SCORE_RATIOS),
                "neighbors": int(self.neighbors) if self.reference_ is not None else 0,
                "score_scales_": list(self.score_scales_)}  # fmt: skip

    @classmethod
    def from_run(cls, run_dir: str | Path, **params):
        """Wrap a ``masklab pretrain table`` run. The run's ``scoring.json`` (written by ``pretrain table``:
        error models, scales and threshold chosen on its training rows, the inference masks' seed, ``n_masks``
        and ``neighbors``; with neighbours, ``scoring.safetensors`` holds the neighbour rows) makes it score
        exactly like the fitted estimator it describes; a run without it scores squared errors, has no
        neighbour term and flags nothing (``threshold_`` = ``threshold``, default inf) until
        :meth:`calibrate` is called."""
        from masklab.core.io import load_checkpoint

        path = Path(run_dir) / SCORING_FILE
        state = read_scoring(path) if path.is_file() else None
        if state is not None and state.get("score_ratios") != list(SCORE_RATIOS):
            raise ValueError(f"{path}: score_ratios {state.get('score_ratios')} differ from {list(SCORE_RATIOS)}")
        stored = {"n_masks": state["n_masks"], "neighbors": int(state.get("neighbors", 0))} if state else {}
        params = {"neighbors": 0, **stored, **params}
        estimator = super().from_run(run_dir, **params)
        estimator._check_params()
        estimator.n_refit_rows_ = None
        estimator.reference_ = None
        if estimator.neighbors:
            if not stored.get("neighbors"):
                raise ValueError(f"neighbors={estimator.neighbors}: run {run_dir} keeps no neighbour rows ({path} "
                                 "says neighbors 0 or does not exist); pass neighbors=0")  # fmt: skip
            tensors, _ = load_checkpoint(Path(run_dir) / REFERENCE_FILE)
            estimator._restore_tensors(tensors)
        if state is not None:  # the masks of calibration unless random_state is given; its error models
            if "random_state" not in params:
                estimator.seed_ = int(state["seed_"])
            estimator._restore_state({k: state[k] for k in ("cauchy_", "score_scales_") if k in state})
            threshold = state["threshold_"] if estimator.threshold is None else estimator.threshold
        else:
            estimator.cauchy_ = np.zeros((len(SCORE_RATIOS), len(estimator.schema_.columns)), dtype=bool)
            estimator.score_scales_ = (1.0, 1.0)
            threshold = math.inf if estimator.threshold is None else estimator.threshold
        estimator.threshold_ = float(threshold)
        estimator.offset_ = -estimator.threshold_
        return estimator


def calibrate_run(run_dir: str | Path, frame, *, contamination: float = 0.1, neighbors: int = 5) -> Path:
    """Write ``RUN/scoring.json`` for a table run: the error models, scales and threshold a detector picks
    on the run's training rows ``frame`` (a seeded sample of at most :data:`FIT_SCORE_ROWS`), and with
    ``neighbors`` > 0 the neighbour rows (``frame``, at most ``REFERENCE_ROWS``) in ``RUN/scoring.safetensors``,
    so ``masklab score`` and :meth:`MaskedAnomalyDetector.from_run` score as a fitted detector does (without
    refit)."""
    from masklab.core.io import atomic_write_json, save_checkpoint

    detector = MaskedAnomalyDetector.from_run(run_dir, contamination=contamination, neighbors=0)
    detector.neighbors = neighbors
    detector._check_params()
    if neighbors:
        detector.reference_ = detector._reference(frame)
        save_checkpoint(Path(run_dir) / REFERENCE_FILE, detector._extra_tensors(), {"format": "masklab.scoring/1"})
    detector.calibrate(_rows(frame, detector._sample(len(frame))))
    path = Path(run_dir) / SCORING_FILE
    atomic_write_json(path, detector.scoring_state())
    return path
