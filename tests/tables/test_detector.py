"""MaskedAnomalyDetector: scikit-learn conventions, refit, error models, save / load, runs scored like fits."""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from table_helpers import FAST, correlated, mixed_frame

from masklab.estimators import MaskedAnomalyDetector
from masklab.estimators.detector import FIT_SCORE_ROWS, SCORE_RATIOS


def test_anomaly_detector_conventions(tmp_path, no_pickle):
    x, _ = correlated(n=200, missing=0.0)
    outliers = x[:10].copy()
    outliers[:, 1] = -outliers[:, 1] * 3  # break the column-1 = 2 * column-0 relation
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=200, batch_size=32, contamination=0.05).fit(x)
    scores = detector.anomaly_score(np.vstack([x[10:], outliers]))
    assert scores[-10:].mean() > np.quantile(scores[:-10], 0.9)
    np.testing.assert_array_equal(detector.score_samples(x), -detector.anomaly_score(x))
    np.testing.assert_allclose(detector.decision_function(x), detector.score_samples(x) - detector.offset_)
    predicted = detector.predict(x)
    assert set(np.unique(predicted)) <= {-1, 1}
    assert abs((predicted == -1).mean() - 0.05) <= 0.01  # contamination sets the training quantile
    errors = detector.cell_errors(x)  # (R, N, C), one matrix per score ratio
    assert errors.shape == (len(SCORE_RATIOS), 200, 4)
    # Score = reconstruction term / its IQR + distance to the 5th nearest other row / its IQR (training rows).
    recon = errors.mean(axis=(0, 2))
    spec = detector.schema_.columns
    z = (x - np.array([c.mean for c in spec])) / np.array([c.std for c in spec])
    distance = NearestNeighbors(n_neighbors=6).fit(z).kneighbors(z)[0][:, -1]  # itself + 5
    iqr = [np.subtract(*np.percentile(t, [75, 25])) for t in (recon, distance)]
    np.testing.assert_allclose(detector.score_scales_, iqr, rtol=1e-5)
    np.testing.assert_allclose(detector.anomaly_score(x), recon / iqr[0] + distance / iqr[1], rtol=1e-5)
    plain = MaskedAnomalyDetector(preset="table-tiny", steps=200, batch_size=32, contamination=0.05, neighbors=0)
    plain.fit(x)
    assert plain.reference_ is None and plain.score_scales_ == (1.0, 1.0)
    np.testing.assert_allclose(plain.anomaly_score(x), plain.cell_errors(x).mean(axis=(0, 2)))
    fixed = MaskedAnomalyDetector(**FAST, threshold=1e9).fit(x)
    assert (fixed.predict(x) == 1).all() and fixed.threshold_ == 1e9
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(restored.anomaly_score(x), detector.anomaly_score(x))
    assert restored.threshold_ == detector.threshold_
    with pytest.raises(ValueError, match="n_masks"):
        MaskedAnomalyDetector(**FAST, n_masks=0).fit(x)


def test_refit_continues_on_the_first_halfs_inliers(tmp_path, no_pickle):
    x, _ = correlated(n=120, missing=0.0)
    x[:6] += 8.0  # six rows far from the rest
    params = dict(preset="table-tiny", batch_size=32, n_masks=2, contamination=0.1)
    refit = MaskedAnomalyDetector(**params, steps=80).fit(x)
    first = MaskedAnomalyDetector(**params, steps=40, refit=False).fit(x)  # the same first half (same seed)
    scores = first._aggregate(first._errors(first._raw_errors(x), choose=True))
    inliers = scores <= np.quantile(scores, 0.9)
    assert refit.n_refit_rows_ == inliers.sum() == 108 and not inliers[:6].any()
    assert refit.n_steps_ == 80
    # The second half starts from the first half's weights: replay it by hand.
    replay = MaskedAnomalyDetector(**params, steps=40, refit=False).fit(x)
    replay._fit_model(x[inliers], steps=40, initial=replay.model_)
    for key, value in replay.model_.state_dict().items():
        torch.testing.assert_close(refit.model_.state_dict()[key], value, rtol=0, atol=0)
    assert refit.threshold_ == np.quantile(refit.anomaly_score(x), 0.9)  # threshold on the training rows
    refit.save(tmp_path / "det")
    assert MaskedAnomalyDetector.load(tmp_path / "det").n_refit_rows_ == 108
    frame = mixed_frame()
    framed = MaskedAnomalyDetector(**{**FAST, "n_masks": 2}).fit(frame)  # refit is the default
    assert framed.n_refit_rows_ == 54 and list(framed.feature_names_in_) == list(frame.columns)
    assert MaskedAnomalyDetector(**params, refit=False).fit(x).n_refit_rows_ is None
    with pytest.raises(ValueError, match="contamination"):
        MaskedAnomalyDetector(**FAST, threshold=1.0, contamination=0.9).fit(x)


def test_fit_scores_a_seeded_sample_of_large_tables():
    detector = MaskedAnomalyDetector(random_state=3)
    detector.seed_ = 3
    sample = detector._sample(FIT_SCORE_ROWS + 500)
    assert len(sample) == FIT_SCORE_ROWS and (np.diff(sample) > 0).all()
    np.testing.assert_array_equal(sample, detector._sample(FIT_SCORE_ROWS + 500))
    np.testing.assert_array_equal(detector._sample(10), np.arange(10))


def test_auto_error_models(tmp_path, no_pickle):
    rng = np.random.default_rng(0)
    frame = mixed_frame(n=200)
    frame["spiky"] = rng.normal(size=200) * np.where(rng.random(200) < 0.03, 100.0, 1.0)  # heavy-tailed
    detector = MaskedAnomalyDetector(**FAST, n_masks=2, refit=False).fit(frame)
    assert detector.cauchy_.shape == (len(SCORE_RATIOS), 4)
    assert not detector.cauchy_[:, 1].any()  # "kind" is categorical: cross-entropy, never log1p
    assert detector.cauchy_[:, 3].all()  # the heavy-tailed column gets the Cauchy error
    raw = detector._raw_errors(frame)  # squared errors / cross-entropies
    expected = np.where(detector.cauchy_[:, None, :], np.log1p(raw), raw)
    np.testing.assert_allclose(detector.cell_errors(frame), expected, rtol=1e-12)
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(restored.cauchy_, detector.cauchy_)
    np.testing.assert_array_equal(restored.anomaly_score(frame), detector.anomaly_score(frame))


def test_neighbour_term_flags_a_consistent_row_far_from_the_others():
    """A row whose cells fit the learnt relation (column 1 = 2 x column 0) but far outside the training
    range: neighbours flag it first; the row's explanation splits its score over its cells."""
    x, _ = correlated(n=200, missing=0.0)
    far = x[:1].copy()
    far[0, 0], far[0, 1] = 6.0, 12.0
    data = np.vstack([x, far])
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=100, batch_size=32).fit(data)
    scores = detector.anomaly_score(data)
    assert scores.argmax() == len(data) - 1
    table = detector.explain(data[-1:])
    np.testing.assert_allclose(table["contribution"].sum(), scores[-1], rtol=1e-9)
    assert set(table["column"][:2]) == {"x0", "x1"}


@pytest.mark.parametrize("kernel", ["sdpa", "bmm"])
def test_a_fitted_detector_scores_exactly_as_its_saved_copy_whichever_kernel_trained_it(
    kernel, tmp_path, monkeypatch, no_pickle
):
    # The training loop may pick the bmm attention kernel for its steps (per machine, by timing); it used to
    # leave the fitted model on it, so the fitted detector and its loaded copy (SDPA) differed by ~1e-8.
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", kernel)
    frame = mixed_frame(n=120)
    detector = MaskedAnomalyDetector(**FAST).fit(frame)
    detector.save(tmp_path / "det")
    restored = MaskedAnomalyDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(restored.anomaly_score(frame), detector.anomaly_score(frame))


def test_more_neighbours_than_training_rows_is_said():
    x, _ = correlated(n=30, missing=0.0)
    with pytest.warns(UserWarning, match="neighbors=40 but there are only 30 training rows"):
        MaskedAnomalyDetector(preset="table-tiny", steps=2, batch_size=16, neighbors=40).fit(x)


def test_a_detector_saved_before_the_neighbour_term_scores_as_it_did(tmp_path, no_pickle):
    import json

    x, x_miss = correlated(n=100)
    detector = MaskedAnomalyDetector(**FAST, neighbors=0).fit(x_miss)
    detector.save(tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "estimator.json").read_text())
    del meta["params"]["neighbors"], meta["fitted"]["score_scales_"]  # what an older version wrote
    (tmp_path / "old" / "estimator.json").write_text(json.dumps(meta))
    restored = MaskedAnomalyDetector.load(tmp_path / "old")
    assert restored.neighbors == 0 and restored.reference_ is None
    np.testing.assert_array_equal(restored.anomaly_score(x_miss), detector.anomaly_score(x_miss))
    for bad in (-1, True, 2.0):  # a bool is not a count (it was taken as k = 1)
        with pytest.raises(ValueError, match="neighbors must be an int >= 0"):
            MaskedAnomalyDetector(**FAST, neighbors=bad).fit(x)
