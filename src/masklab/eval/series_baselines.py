"""Features of the classical series baselines (``bench/series.py``, ``masklab probe`` on a series run)."""

from __future__ import annotations

import numpy as np

from masklab.data.series import SeriesSet


def summary_features(data: SeriesSet) -> np.ndarray:
    """Per channel: mean, std, min, max, first, last and slope, plus the length -> ``(N, 7 * C + 1)`` (the
    logistic-regression baseline's features; NaN steps are skipped)."""
    rows = []
    for s in data.series:
        t = np.arange(len(s), dtype=np.float64)
        feats = []
        for c in range(s.shape[1]):
            x = s[:, c].astype(np.float64)
            ok = ~np.isnan(x)
            v, tt = (x[ok], t[ok]) if ok.any() else (np.zeros(1), np.zeros(1))
            slope = np.polyfit(tt, v, 1)[0] if len(v) > 1 else 0.0
            feats += [v.mean(), v.std(), v.min(), v.max(), v[0], v[-1], slope]
        rows.append([*feats, len(s)])
    return np.nan_to_num(np.array(rows, dtype=np.float64))
