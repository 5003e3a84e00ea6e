"""Small tables shared by the estimator tests."""

import numpy as np
import pandas as pd

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
