"""MaskedAnomalyDetector.explain: the planted cell comes first, with its true value expected; the picture."""

import numpy as np
import pandas as pd

from masklab.estimators import MaskedAnomalyDetector


def correlated_frame(n=400, seed=0):
    """Four numeric columns driven by one factor (b = 2a, c = -a, d = a + 1, small noise) and a category."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    noise = lambda: 0.05 * rng.normal(size=n)  # noqa: E731
    frame = pd.DataFrame({"a": a + noise(), "b": 2 * a + noise(), "c": -a + noise(), "d": a + 1 + noise()})
    frame["kind"] = np.where(a > 0, "high", "low").astype(object)
    return frame


def test_planted_cell_is_ranked_first_with_its_true_value_expected(tmp_path):
    frame = correlated_frame()
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=300, batch_size=64, random_state=0).fit(frame)
    row = 7
    true_b = frame.loc[row, "b"]
    planted = frame.copy()
    planted.loc[row, "b"] = true_b + 6.0  # six standard deviations of b's own noise-free spread off
    explanation = detector.explain(planted)
    mine = explanation[explanation["row"] == row].sort_values("rank")
    assert mine["column"].iloc[0] == "b" and mine["rank"].iloc[0] == 1
    assert mine["share"].iloc[0] > 0.5
    assert mine["observed"].iloc[0] == planted.loc[row, "b"]
    assert abs(mine["expected"].iloc[0] - true_b) < 0.5  # predicted from a, c, d: close to the truth
    # Shares of a row sum to 1, contributions to its score, which is anomaly_score's.
    np.testing.assert_allclose(mine["share"].sum(), 1.0)
    scores = detector.anomaly_score(planted)
    np.testing.assert_allclose(mine["contribution"].sum(), scores[row])
    assert scores[row] > np.quantile(scores, 0.95)
    assert set(mine["column"]) == set(frame.columns)  # one line per observed cell
    assert (explanation.groupby("row")["rank"].max() == 5).all()
    kind = explanation[(explanation["column"] == "kind")]
    assert set(kind["expected"]) <= {"high", "low"}  # categorical cells expect a category
    top = detector.explain(planted, top=2)
    assert (top.groupby("row").size() == 2).all()

    from masklab.viz.explain import plot_explanations

    worst = explanation[explanation["row"].isin(np.argsort(-scores)[:5])]
    png = plot_explanations(worst, tmp_path / "explain.png")
    assert png.stat().st_size > 0


def test_missing_cells_take_no_part():
    frame = correlated_frame(n=200)
    frame.loc[3, "c"] = np.nan
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=60, batch_size=64).fit(frame)
    mine = detector.explain(frame).query("row == 3")
    assert "c" not in set(mine["column"]) and sorted(mine["rank"]) == [1, 2, 3, 4]
