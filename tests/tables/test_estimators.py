"""MaskedImputer / MaskedAnomalyDetector: sklearn behaviour, untouched observed cells, determinism,
safetensors save/load with pickle disabled."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from table_helpers import FAST, correlated, mixed_frame

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer
from masklab.models.table.model import column_patterns

# scikit-learn's own estimator checks, one test each (about 30 s in all). Expected failures: none. Both
# estimators pass every check (sklearn 1.9): the inference masks are fixed column patterns shared by all rows,
# so results do not depend on batch composition or order, and missing values are accepted (allow_nan tag).
# sklearn itself skips check_array_api_input unless SCIPY_ARRAY_API is set.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [MaskedImputer(**FAST), MaskedAnomalyDetector(**FAST)],
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


def test_imputer_rounds_whole_number_columns_of_frames_only():
    """A 0/1 column: an array comes back with the unrounded least-squares fill (as scikit-learn's imputers);
    a DataFrame with whole numbers, the same predictions rounded."""
    _, x_miss = correlated()
    x_miss = x_miss.copy()
    observed = ~np.isnan(x_miss[:, 0])
    x_miss[observed, 0] = (x_miss[observed, 0] > np.median(x_miss[observed, 0])).astype(float)  # binary 0/1
    imputer = MaskedImputer(**FAST).fit(x_miss)
    fill = np.isnan(x_miss[:, 0])
    from_array = imputer.transform(x_miss)[fill, 0]
    assert np.any(from_array != np.round(from_array))  # not rounded
    frame = pd.DataFrame(x_miss, columns=[f"x{j}" for j in range(x_miss.shape[1])])
    from_frame = MaskedImputer(**FAST).fit(frame).transform(frame)["x0"].to_numpy()[fill]
    np.testing.assert_array_equal(from_frame, np.round(from_array))


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


def test_import_loads_no_sklearn_until_an_estimator_is_used():
    import subprocess
    import sys

    code = (
        "import sys, masklab.estimators as e; assert 'sklearn' not in sys.modules and 'torch' not in sys.modules; "
        "e.MaskedImputer; assert 'sklearn' in sys.modules; print(sorted(e.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "MaskedAnomalyDetector" in out


def test_load_rejects_removed_parameters(tmp_path):
    import json

    _, x_miss = correlated()
    MaskedImputer(**FAST).fit(x_miss).save(tmp_path / "imp")
    meta = json.loads((tmp_path / "imp" / "estimator.json").read_text())
    meta["params"]["n_masks"] = 2  # a 0.x parameter that no longer exists
    (tmp_path / "imp" / "estimator.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="n_masks"):
        MaskedImputer.load(tmp_path / "imp")
