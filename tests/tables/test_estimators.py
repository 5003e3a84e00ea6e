"""MaskedImputer / MaskedAnomalyDetector: sklearn behaviour, untouched observed cells, determinism,
safetensors save/load with pickle disabled."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer
from masklab.models.table.model import column_patterns

FAST = dict(preset="table-tiny", steps=30, batch_size=16)


def correlated(n=80, seed=0, missing=0.2):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    x = np.hstack([z, 2 * z + 0.1 * rng.normal(size=(n, 1)), rng.normal(size=(n, 2))])
    x_miss = np.where(rng.random(x.shape) < missing, np.nan, x)
    return x, x_miss


def mixed_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "kind": rng.choice(["a", "b", "c"], size=n).astype(object),
            "count": rng.integers(0, 5, size=n).astype(float),
        }
    )
    frame.loc[rng.random(n) < 0.2, "num"] = np.nan
    frame.loc[rng.random(n) < 0.2, "kind"] = None
    return frame


# scikit-learn's own estimator checks, one test each (about 30 s in all). Expected failures: none. Both
# estimators pass every check (sklearn 1.9): the inference masks are fixed column patterns shared by all rows,
# so results do not depend on batch composition or order, and missing values are accepted (allow_nan tag).
# sklearn itself skips check_array_api_input unless SCIPY_ARRAY_API is set.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [MaskedImputer(**FAST), MaskedAnomalyDetector(**FAST, n_masks=1)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_sklearn_conventions():
    imputer = MaskedImputer(**FAST, random_state=3)
    assert imputer.get_params()["random_state"] == 3 and imputer.set_params(steps=5).steps == 5
    with pytest.raises(Exception, match="not fitted"):
        imputer.transform(np.zeros((2, 2)))
    _, x_miss = correlated()
    imputer.fit(pd.DataFrame(x_miss, columns=list("abcd")))
    assert imputer.n_features_in_ == 4 and list(imputer.feature_names_in_) == list("abcd")
    assert list(imputer.get_feature_names_out()) == list("abcd")


def test_imputer_leaves_observed_cells_untouched():
    _, x_miss = correlated()
    out = MaskedImputer(**FAST).fit(x_miss).transform(x_miss)
    observed = ~np.isnan(x_miss)
    assert np.array_equal(out[observed], x_miss[observed])
    assert not np.isnan(out).any()

    frame = mixed_frame()
    filled = MaskedImputer(**FAST).fit_transform(frame)
    for column in frame.columns:
        kept = frame[column].notna()
        pd.testing.assert_series_equal(filled.loc[kept, column], frame.loc[kept, column], check_dtype=False)
        assert filled[column].notna().all()
    assert set(filled["kind"]) <= {"a", "b", "c"}


def test_imputer_is_deterministic_and_batch_independent():
    _, x_miss = correlated()
    first = MaskedImputer(**FAST, random_state=7).fit(x_miss)
    second = MaskedImputer(**FAST, random_state=7).fit(x_miss)
    np.testing.assert_array_equal(first.transform(x_miss), second.transform(x_miss))
    for a, b in zip(first.model_.parameters(), second.model_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_allclose(first.transform(x_miss[:5]), first.transform(x_miss)[:5], rtol=1e-6)
    other = MaskedImputer(**FAST, random_state=8).fit(x_miss)
    assert not np.array_equal(other.transform(x_miss), first.transform(x_miss))


def test_imputer_learns_correlation():
    x, x_miss = correlated(n=200, missing=0.2)
    out = MaskedImputer(preset="table-tiny", steps=400, batch_size=32).fit_transform(x_miss)
    hidden = np.isnan(x_miss[:, 1]) & ~np.isnan(x_miss[:, 0])  # column 1 = 2 * column 0 + noise
    model_err = np.sqrt(np.mean((out[hidden, 1] - x[hidden, 1]) ** 2))
    mean_err = np.sqrt(np.mean((np.nanmean(x_miss[:, 1]) - x[hidden, 1]) ** 2))
    assert model_err < 0.5 * mean_err


@pytest.fixture
def no_pickle(monkeypatch):
    """Any use of pickle or torch's pickle-based (de)serialisation fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was used")

    for name in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(torch, "save", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


def test_pipeline_with_imputer_restored_from_safetensors(tmp_path, no_pickle):
    x, x_miss = correlated(n=120)
    y = (x[:, 0] + x[:, 2] > 0).astype(int)
    pipe = Pipeline([("impute", MaskedImputer(**FAST)), ("clf", LogisticRegression())]).fit(x_miss, y)
    pipe.named_steps["impute"].save(tmp_path / "imputer")
    assert sorted(p.name for p in (tmp_path / "imputer").iterdir()) == ["estimator.json", "model.safetensors"]
    restored = MaskedImputer.load(tmp_path / "imputer")
    assert restored.get_params() == pipe.named_steps["impute"].get_params()
    twin = Pipeline([("impute", restored), ("clf", pipe.named_steps["clf"])])
    np.testing.assert_array_equal(twin.predict_proba(x_miss), pipe.predict_proba(x_miss))
    np.testing.assert_array_equal(restored.transform(x_miss), pipe.named_steps["impute"].transform(x_miss))


def test_load_rejects_other_class(tmp_path):
    _, x_miss = correlated()
    MaskedImputer(**FAST).fit(x_miss).save(tmp_path / "imp")
    with pytest.raises(ValueError, match="not a MaskedAnomalyDetector"):
        MaskedAnomalyDetector.load(tmp_path / "imp")
    with pytest.raises(FileNotFoundError, match="not a saved masklab estimator"):
        MaskedImputer.load(tmp_path / "missing")


def test_anomaly_detector_conventions(tmp_path, no_pickle):
    x, _ = correlated(n=200, missing=0.0)
    outliers = x[:10].copy()
    outliers[:, 1] = -outliers[:, 1] * 3  # break the column-1 = 2 * column-0 relation
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=300, batch_size=32, contamination=0.05).fit(x)
    scores = detector.anomaly_score(np.vstack([x[10:], outliers]))
    assert scores[-10:].mean() > np.quantile(scores[:-10], 0.9)
    np.testing.assert_array_equal(detector.score_samples(x), -detector.anomaly_score(x))
    np.testing.assert_allclose(detector.decision_function(x), detector.score_samples(x) - detector.offset_)
    predicted = detector.predict(x)
    assert set(np.unique(predicted)) <= {-1, 1}
    assert abs((predicted == -1).mean() - 0.05) <= 0.01  # contamination sets the training quantile
    errors = detector.cell_errors(x)  # (R, N, C), one matrix per score ratio
    assert errors.shape == (4, 200, 4)
    np.testing.assert_allclose(detector.anomaly_score(x), errors.mean(axis=(0, 2)))
    fixed = MaskedAnomalyDetector(**FAST, threshold=1e9).fit(x)
    assert (fixed.predict(x) == 1).all() and fixed.threshold_ == 1e9
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(restored.anomaly_score(x), detector.anomaly_score(x))
    assert restored.threshold_ == detector.threshold_


def test_anomaly_detector_normalize():
    x, _ = correlated(n=100, missing=0.1)
    detector = MaskedAnomalyDetector(**FAST, normalize=True, score_ratios=(0.5, 1.0)).fit(x)
    errors = detector.cell_errors(x)  # (2, N, C)
    np.testing.assert_allclose(detector.column_scale_, np.nanmean(errors, axis=1))
    per_row = np.nanmean(errors / np.nanmean(errors, axis=1, keepdims=True), axis=2)  # (2, N)
    np.testing.assert_allclose(detector.anomaly_score(x), per_row.mean(0))
    with pytest.raises(ValueError, match="score_ratios"):
        MaskedAnomalyDetector(**FAST, score_ratios=(0.0,)).fit(x)


def test_column_patterns_hide_every_column_equally():
    patterns = column_patterns(7, rounds=3, ratio=0.3, seed=0)  # groups of round(2.1) = 2 columns
    assert patterns.shape == (12, 7)
    assert patterns.sum(0).tolist() == [3] * 7
    torch.testing.assert_close(patterns, column_patterns(7, rounds=3, ratio=0.3, seed=0))
    assert column_patterns(7, rounds=3, ratio=1.0, seed=0).tolist() == [[True] * 7]  # hide all, once


def test_early_stopping_keeps_the_best_checked_weights():
    import pandas as pd

    from masklab.data.tables import HeldOutCells
    from masklab.tokenizers.table import encode_frame, infer_schema

    _, x_miss = correlated(n=100)
    frame = pd.DataFrame(x_miss, columns=[f"x{j}" for j in range(4)])
    encoded = encode_frame(frame, infer_schema(frame))
    held = HeldOutCells(encoded, 0.2, seed=0)
    assert not (held.held & encoded.missing[held.rows]).any()  # only observed cells are held out
    assert torch.equal(held.train.missing[held.rows], encoded.missing[held.rows] | held.held)
    imputer = MaskedImputer(**{**FAST, "steps": 40}, early_stopping=True, validation_fraction=0.2).fit(x_miss)
    assert 1 <= imputer.best_step_ <= 40 and np.isfinite(imputer.validation_loss_)
    assert held.loss(imputer.model_) >= 0


def test_anomaly_detector_gaussian_nll(tmp_path):
    x, x_miss = correlated(n=100, missing=0.1)
    frame = mixed_frame()
    for data in (x_miss, frame):
        detector = MaskedAnomalyDetector(**FAST, n_masks=2, numeric_loss="gaussian_nll").fit(data)
        assert detector.model_.config.numeric_loss == "gaussian_nll"
        assert hasattr(detector.model_, "numeric_logvar_weight")
        scores = detector.anomaly_score(data)
        assert scores.shape == (len(data),) and np.isfinite(scores).all()
        errors = detector.cell_errors(data)
        assert np.isfinite(errors[~np.isnan(errors)]).all()
    # The default stays the squared error, with no log-variance head.
    assert not hasattr(MaskedAnomalyDetector(**FAST).fit(x).model_, "numeric_logvar_weight")
    assert MaskedImputer(**FAST).fit(x_miss).model_.config.numeric_loss == "mse"
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    assert restored.numeric_loss == "gaussian_nll"
    np.testing.assert_array_equal(restored.anomaly_score(frame), detector.anomaly_score(frame))
    with pytest.raises(ValueError, match="numeric_loss"):
        MaskedAnomalyDetector(**FAST, numeric_loss="laplace").fit(x)


def test_anomaly_detector_trim_fraction():
    x, _ = correlated(n=100, missing=0.0)
    detector = MaskedAnomalyDetector(**FAST, n_masks=2, trim_fraction=0.1).fit(x)
    assert detector.model_.config.trim_fraction == 0.1
    scores = detector.anomaly_score(x)
    assert scores.shape == (len(x),) and np.isfinite(scores).all()
    assert MaskedAnomalyDetector(**FAST).fit(x).model_.config.trim_fraction == 0.0
    assert MaskedImputer(**FAST).fit(x).model_.config.trim_fraction == 0.0
    with pytest.raises(ValueError, match="trim_fraction"):
        MaskedAnomalyDetector(**FAST, trim_fraction=1.5).fit(x)


def test_anomaly_detector_refit_trains_on_the_first_models_inliers(tmp_path, no_pickle):
    x, _ = correlated(n=120, missing=0.0)
    x[:6] += 8.0  # six rows far from the rest
    params = dict(preset="table-tiny", steps=200, batch_size=32, n_masks=2, contamination=0.1, refit=False)
    params["numeric_error"] = "squared"  # (auto would pick its error models on different training rows)
    refit = MaskedAnomalyDetector(**{**params, "refit": True}).fit(x)
    first = MaskedAnomalyDetector(**params).fit(x).anomaly_score(x)  # the same first model (same seed)
    inliers = first <= np.quantile(first, 0.9)
    assert refit.n_refit_rows_ == inliers.sum() == 108 and not inliers[:6].any()
    second = MaskedAnomalyDetector(**params).fit(x[inliers])
    for key, value in second.model_.state_dict().items():
        torch.testing.assert_close(refit.model_.state_dict()[key], value, rtol=0, atol=0)
    np.testing.assert_array_equal(refit.anomaly_score(x), second.anomaly_score(x))
    assert refit.threshold_ == np.quantile(refit.anomaly_score(x), 0.9)  # the threshold uses every training row
    refit.save(tmp_path / "det")
    assert MaskedAnomalyDetector.load(tmp_path / "det").n_refit_rows_ == 108
    frame = mixed_frame()
    framed = MaskedAnomalyDetector(**{**FAST, "n_masks": 2}).fit(frame)  # refit is the default
    assert framed.n_refit_rows_ == 54 and list(framed.feature_names_in_) == list(frame.columns)
    assert MaskedAnomalyDetector(**params).fit(x).n_refit_rows_ is None
    with pytest.raises(ValueError, match="contamination"):
        MaskedAnomalyDetector(**FAST, threshold=1.0, contamination=0.9).fit(x)


def test_anomaly_detector_log1p_numeric_error():
    frame = mixed_frame()
    params = dict(**FAST, n_masks=2, refit=False)  # one model: the error model only changes the scoring
    squared = MaskedAnomalyDetector(**params, numeric_error="squared").fit(frame).cell_errors(frame)  # (R, N, C)
    log1p = MaskedAnomalyDetector(**params, numeric_error="log1p").fit(frame)
    errors = log1p.cell_errors(frame)
    numeric = [0, 2]  # "num", "count"; "kind" (1) is categorical: cross-entropy either way
    np.testing.assert_allclose(errors[..., numeric], np.log1p(squared[..., numeric]), rtol=1e-12)
    np.testing.assert_array_equal(errors[..., 1], squared[..., 1])
    np.testing.assert_allclose(log1p.anomaly_score(frame), np.nanmean(errors, axis=2).mean(0))
    with pytest.raises(ValueError, match="numeric_error"):
        MaskedAnomalyDetector(**params, numeric_error="abs").fit(frame)
    with pytest.raises(ValueError, match="numeric_error='log1p' needs"):
        MaskedAnomalyDetector(**params, numeric_error="log1p", numeric_loss="gaussian_nll").fit(frame)


@pytest.mark.parametrize("law", ["normal", "cauchy", "t3", "t10", "laplace", "mixture"])
def test_cauchy_fits_better_matches_scipy_maximum_likelihood(law):
    from scipy import stats

    from masklab.estimators import cauchy_fits_better

    rng = np.random.default_rng(len(law))
    r = {
        "normal": lambda: rng.normal(size=2000),
        "cauchy": lambda: rng.standard_cauchy(size=2000),
        "t3": lambda: rng.standard_t(3, size=2000),
        "t10": lambda: rng.standard_t(10, size=2000),
        "laplace": lambda: rng.laplace(size=2000),
        "mixture": lambda: np.where(rng.random(2000) < 0.02, 50.0, 1.0) * rng.normal(size=2000),
    }[law]()
    _, gamma = stats.cauchy.fit(r, floc=0)  # float64 maximum likelihood, centred residuals
    cauchy = stats.cauchy.logpdf(r, 0, gamma).mean()
    gaussian = stats.norm.logpdf(r, 0, np.sqrt(np.mean(r**2))).mean()
    assert abs(cauchy - gaussian) > 1e-3  # not a tie
    assert cauchy_fits_better(np.append(r**2, np.nan)) == (cauchy > gaussian)  # NaN = a missing cell
    assert cauchy_fits_better(rng.standard_cauchy(size=7) ** 2) is False  # too few residuals
    assert cauchy_fits_better(np.zeros(100)) is False


def test_anomaly_detector_auto_error_models(tmp_path, no_pickle):
    rng = np.random.default_rng(0)
    frame = mixed_frame(n=200)
    frame["spiky"] = rng.normal(size=200) * np.where(rng.random(200) < 0.03, 100.0, 1.0)  # heavy-tailed
    detector = MaskedAnomalyDetector(**FAST, n_masks=2, score_ratios=(0.5, 1.0), refit=False).fit(frame)
    assert detector.cauchy_.shape == (2, 4)
    assert not detector.cauchy_[:, 1].any()  # "kind" is categorical: cross-entropy, never log1p
    assert detector.cauchy_[:, 3].all()  # the heavy-tailed column gets the Cauchy error
    squared = MaskedAnomalyDetector(**FAST, n_masks=2, score_ratios=(0.5, 1.0), refit=False, numeric_error="squared")
    raw = squared.fit(frame).cell_errors(frame)  # the same model (seeded), squared errors
    expected = np.where(detector.cauchy_[:, None, :], np.log1p(raw), raw)
    np.testing.assert_allclose(detector.cell_errors(frame), expected, rtol=1e-12)
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(restored.cauchy_, detector.cauchy_)
    np.testing.assert_array_equal(restored.anomaly_score(frame), detector.anomaly_score(frame))
