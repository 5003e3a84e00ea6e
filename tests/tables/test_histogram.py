"""The anomaly-score histogram."""

import numpy as np
import pytest

from masklab.viz.histogram import plot_score_histogram


def test_histogram_with_labels_and_threshold(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.lognormal(0, 1, 200), rng.lognormal(4, 1, 20)])  # spans > 2 decades: log axis
    labels = np.r_[np.zeros(200, int), np.ones(20, int)]
    path = plot_score_histogram(scores, tmp_path / "h.png", labels=labels, threshold=10.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_score_histogram(np.array([-1.0, 0.0, 1.0]), tmp_path / "lin.png").is_file()  # linear axis


def test_histogram_errors(tmp_path):
    with pytest.raises(ValueError, match="labels has shape"):
        plot_score_histogram(np.ones(3), tmp_path / "x.png", labels=np.ones(2))
    with pytest.raises(ValueError, match="no finite scores"):
        plot_score_histogram(np.array([np.nan]), tmp_path / "x.png")
