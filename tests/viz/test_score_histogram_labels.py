"""The anomaly-score histogram names its axis truthfully and draws every row: rows with a blank label are a
third group, and ``score``'s ROC-AUC / PR-AUC are over the labelled rows."""

import warnings

import numpy as np
import pandas as pd
import pytest

from masklab.viz.histogram import plot_score_histogram


def _legend(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_x_axis_names_the_detector_score_not_a_reconstruction_error(tmp_path, drawn):
    plot_score_histogram(np.array([0.5, 1.0, 2.0]), tmp_path / "h.png")
    label = drawn[-1].axes[0].get_xlabel()
    assert "reconstruction error" not in label and "higher = more anomalous" in label
    plot_score_histogram(np.array([0.5, 1.0, 2.0]), tmp_path / "h.png", xlabel="my score")
    assert drawn[-1].axes[0].get_xlabel() == "my score"


def test_rows_without_a_label_are_a_third_group(tmp_path, drawn):
    scores = np.arange(1.0, 11.0)
    labels = np.array([0, 0, 0, 1, 1, np.nan, np.nan, np.nan, 0, np.nan])
    plot_score_histogram(scores, tmp_path / "h.png", labels=labels)
    assert _legend(drawn[-1]) == ["normal (label 0): 4", "anomaly (label 1): 2", "no label: 4"]
    plot_score_histogram(scores, tmp_path / "h.png", labels=np.nan_to_num(labels))  # all labelled: two groups
    assert _legend(drawn[-1]) == ["normal (label 0): 8", "anomaly (label 1): 2"]


@pytest.fixture(scope="module")
def labelled_table(tmp_path_factory):
    from masklab.cli import main

    folder = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    frame.loc[70:, ["a", "b"]] += 6.0  # the last ten rows are anomalies
    frame["anomaly"] = np.r_[np.zeros(70), np.ones(10)]
    frame.loc[[3, 10, 20, 30, 72, 75], "anomaly"] = np.nan  # blank label cells
    frame.to_csv(folder / "t.csv", index=False)
    argv = ["pretrain", "table", "--data", str(folder / "t.csv"), "--preset", "table-tiny", "--steps", "3",
            "--exclude", "anomaly", "--out", str(folder / "run")]  # fmt: skip
    assert main(argv) == 0
    return folder, frame


def test_score_with_blank_label_cells(labelled_table, tmp_path, drawn, capsys):
    from sklearn.metrics import average_precision_score, roc_auc_score

    from masklab.cli import main
    from masklab.recipes.table import score

    folder, frame = labelled_table
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        r = score(folder / "run", str(folder / "t.csv"), tmp_path / "s.csv", label="anomaly")
    assert _legend(drawn[-1]) == ["normal (label 0): 66", "anomaly (label 1): 8", "no label: 6"]
    known = frame["anomaly"].notna().to_numpy()
    y = frame["anomaly"].to_numpy()[known]
    assert r["unlabelled"] == 6
    assert r["roc_auc"] == pytest.approx(roc_auc_score(y, r["scores"][known]))
    assert r["pr_auc"] == pytest.approx(average_precision_score(y, r["scores"][known]))
    assert main(["score", str(folder / "run"), str(folder / "t.csv"), "-o", str(tmp_path / "s2.csv"),
                 "--label", "anomaly"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "not 0/1" not in out
    assert "6 row(s) with no label left out" in out and f"ROC-AUC {r['roc_auc']:.4f}" in out, out
