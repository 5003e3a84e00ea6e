"""The anomaly-score histogram names its axis truthfully and draws every row: rows with a blank label are a
third group, and ``score``'s ROC-AUC / PR-AUC are over the labelled rows."""

import numpy as np

from masklab.viz.histogram import plot_score_histogram


def test_x_axis_names_the_detector_score_not_a_reconstruction_error(tmp_path, drawn):
    plot_score_histogram(np.array([0.5, 1.0, 2.0]), tmp_path / "h.png")
    label = drawn[-1].axes[0].get_xlabel()
    assert "reconstruction error" not in label and "higher = more anomalous" in label
    plot_score_histogram(np.array([0.5, 1.0, 2.0]), tmp_path / "h.png", xlabel="my score")
    assert drawn[-1].axes[0].get_xlabel() == "my score"

