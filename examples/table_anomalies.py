"""Tables with the scikit-learn estimators: impute missing cells, score rows, explain the most unusual one."""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_wine

from masklab.estimators import MaskedAnomalyDetector, MaskedImputer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    frame = load_wine(as_frame=True).frame.drop(columns="target")
    rng = np.random.default_rng(0)
    holes = frame.mask(rng.random(frame.shape) < 0.2)  # 20% of the cells missing completely at random
    filled = MaskedImputer(steps=args.steps, random_state=0).fit_transform(holes)
    error = (filled - frame).abs().to_numpy()[holes.isna().to_numpy()].mean()
    print(f"imputed {int(holes.isna().sum().sum())} cells, mean absolute error {error:.3f}")
    detector = MaskedAnomalyDetector(steps=args.steps, random_state=0).fit(frame)
    scores = detector.score_samples(frame)
    worst = int(np.argmin(scores))  # score_samples: lower = more abnormal (scikit-learn's convention)
    print(f"most unusual row: {worst}")
    print(detector.explain(frame.iloc[[worst]]).head())


if __name__ == "__main__":
    main()
