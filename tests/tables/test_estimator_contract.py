"""Estimator contract: save is all-or-nothing and load refuses a mixed folder, numpy scalar and RandomState
parameters, parameter checks in fit (naming the parameter), and warnings that point at the caller's line."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer

FAST = dict(preset="table-tiny", steps=5, batch_size=16)


def table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame.loc[[1, 4], "a"] = np.nan
    return frame


# ------------------------------------------------------------------------------------------- save / load
def test_save_with_numpy_scalar_parameters_round_trips(tmp_path, no_pickle):
    """GridSearchCV sets parameters to numpy scalars: they are saved as the equal Python numbers."""
    imputer = MaskedImputer(**{**FAST, "steps": np.int64(5)}, random_state=np.int64(1), lr=np.float64(1e-3))
    imputer.fit(table())
    restored = MaskedImputer.load(imputer.save(tmp_path / "imp"))
    assert restored.get_params() == imputer.get_params()
    assert type(restored.steps) is int and type(restored.random_state) is int and type(restored.lr) is float
    np.testing.assert_array_equal(restored.transform(table()).to_numpy(), imputer.transform(table()).to_numpy())


def test_a_failed_save_leaves_the_earlier_estimator_whole(tmp_path):
    first = MaskedImputer(**FAST, random_state=0).fit(table())
    first.save(tmp_path / "imp")
    second = MaskedImputer(**FAST, random_state=1).fit(table())
    second.set_params(verbose=object())  # not JSON: the save fails after the weights are ready
    with pytest.raises((ValueError, TypeError)):
        second.save(tmp_path / "imp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imp"]  # no temporary sibling left behind
    assert sorted(p.name for p in (tmp_path / "imp").iterdir()) == ["estimator.json", "model.safetensors"]
    restored = MaskedImputer.load(tmp_path / "imp")
    pd.testing.assert_frame_equal(restored.transform(table()), first.transform(table()))
    second.set_params(verbose=False).save(tmp_path / "imp")  # and a good save replaces it
    pd.testing.assert_frame_equal(MaskedImputer.load(tmp_path / "imp").transform(table()), second.transform(table()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imp"]


def test_save_into_a_folder_with_other_files_keeps_them(tmp_path):
    (tmp_path / "imp").mkdir()
    (tmp_path / "imp" / "notes.txt").write_text("mine")
    imputer = MaskedImputer(**FAST).fit(table())
    imputer.save(tmp_path / "imp")
    imputer.save(tmp_path / "imp")
    assert sorted(p.name for p in (tmp_path / "imp").iterdir()) == ["estimator.json", "model.safetensors", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imp"]


def test_what_a_killed_save_left_is_removed_by_the_next_a_live_ones_kept(tmp_path):
    """``kill -9`` during ``save`` leaves its hidden folder; the next save into the same path removes it (its
    writer is dead), never a live writer's (a sleeping child's pid)."""
    import subprocess
    import sys

    from tests.core.leftovers import DEAD_PID, plant

    imputer = MaskedImputer(**FAST).fit(table())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead, live = plant(tmp_path / "imp", DEAD_PID), plant(tmp_path / "imp", child.pid)
        imputer.save(tmp_path / "imp")
        assert not dead.exists() and live.exists()
        dead = plant(tmp_path / "imp", DEAD_PID)  # and when an earlier save is replaced
        imputer.save(tmp_path / "imp")
        assert not dead.exists() and live.exists()
    finally:
        child.kill()
        child.wait()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["imp", live.name])
    assert sorted(p.name for p in (tmp_path / "imp").iterdir()) == ["estimator.json", "model.safetensors"]
    pd.testing.assert_frame_equal(MaskedImputer.load(tmp_path / "imp").transform(table()), imputer.transform(table()))


def test_load_refuses_weights_of_another_save(tmp_path):
    MaskedImputer(**FAST, random_state=0).fit(table()).save(tmp_path / "one")
    MaskedImputer(**FAST, random_state=1).fit(table()).save(tmp_path / "two")
    shutil.copyfile(tmp_path / "two" / "model.safetensors", tmp_path / "one" / "model.safetensors")
    with pytest.raises(ValueError, match="do not belong"):
        MaskedImputer.load(tmp_path / "one")


def test_empty_category_values_round_trip(tmp_path):
    imputer = MaskedImputer(**FAST).fit(table())
    assert imputer.category_values_ == {}
    assert MaskedImputer.load(imputer.save(tmp_path / "imp")).category_values_ == {}


def test_random_state_instance_draws_the_seed(tmp_path):
    """scikit-learn's convention: a RandomState instance gives the seed, one draw per fit."""
    seed = np.random.RandomState(0).randint(0, 2**31 - 1)
    first = MaskedImputer(**FAST, random_state=np.random.RandomState(0)).fit(table())
    second = MaskedImputer(**FAST, random_state=seed).fit(table())
    assert first.seed_ == seed
    pd.testing.assert_frame_equal(first.transform(table()), second.transform(table()))
    restored = MaskedImputer.load(first.save(tmp_path / "imp"))  # an instance cannot be written: saved as None
    assert restored.random_state is None and restored.seed_ == seed
    with pytest.raises(ValueError, match="random_state"):
        MaskedImputer(**FAST, random_state=-1).fit(table())


def test_saved_json_records_the_weights(tmp_path):
    MaskedImputer(**FAST).fit(table()).save(tmp_path / "imp")
    meta = json.loads((tmp_path / "imp" / "estimator.json").read_text())
    assert len(meta["weights_sha256"]) == 64


# ---------------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("cls", [MaskedImputer, MaskedAnomalyDetector])
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"handle_unknown": "ignore"}, "handle_unknown"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.7}, "steps"),
        ({"steps": True}, "steps"),
        ({"steps": "5"}, "steps"),
    ],
)
def test_fit_checks_parameters(cls, params, name):
    with pytest.raises(ValueError, match=name):
        cls(**{**FAST, **params}).fit(table())


def test_detector_trains_exactly_steps():
    with pytest.raises(ValueError, match="steps"):  # refit: half on all rows, half on the inliers
        MaskedAnomalyDetector(**{**FAST, "steps": 1}).fit(table())
    assert MaskedAnomalyDetector(**{**FAST, "steps": 1}, refit=False).fit(table()).n_steps_ == 1
    assert MaskedAnomalyDetector(**{**FAST, "steps": 3}).fit(table()).n_steps_ == 3
    assert MaskedAnomalyDetector(**{**FAST, "steps": np.int64(2)}).fit(table()).n_steps_ == 2


@pytest.mark.parametrize("contamination", ["auto", None, True, 0.0, 0.6])
def test_contamination_must_be_a_share(contamination):
    with pytest.raises(ValueError, match=r"contamination.*\(0, 0.5\]"):
        MaskedAnomalyDetector(**FAST, contamination=contamination).fit(table())


@pytest.mark.parametrize("top", [0, -1, 1.5])
def test_explain_refuses_top_below_one(top):
    detector = MaskedAnomalyDetector(**FAST).fit(table())
    with pytest.raises(ValueError, match="top"):
        detector.explain(table(), top=top)


# ------------------------------------------------------------------------------------------- warnings
@pytest.mark.parametrize("method", ["anomaly_score", "score_samples", "decision_function", "predict"])
def test_empty_row_warning_points_at_the_caller(method):
    detector = MaskedAnomalyDetector(**FAST).fit(table())
    rows = table().head(3)
    rows.loc[0] = np.nan
    with pytest.warns(UserWarning, match="no observed cell") as caught:
        getattr(detector, method)(rows)
    assert [w.filename for w in caught if "no observed cell" in str(w.message)] == [__file__]
