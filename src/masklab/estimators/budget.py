"""Default training lengths of the table estimators and of ``masklab pretrain table`` (no scikit-learn here).

Budgets in optimizer steps of ``batch_size`` rows. The detector's is sized so that a 10,000 x 10 table fits
in seconds on one CPU thread; the imputer's keeps the many epochs small tables need for its accuracy (see
``docs/benchmarks.md``: it is the slower of the two).
"""

from __future__ import annotations

import math

IMPUTER_EPOCHS = 400  # masking makes every epoch a new problem, so small tables need many (ReMasker: 600)
IMPUTER_STEPS = (1000, 4000)  # clip: a floor for tiny tables, a ceiling for large ones (they saturate sooner)
DETECTOR_STEPS = 150  # in all; with refit, half before and half after dropping the presumed anomalies


def auto_steps(n_rows: int, batch_size: int) -> int:
    """The imputer's (and ``pretrain table``'s) default: ``IMPUTER_EPOCHS`` epochs clipped to
    ``IMPUTER_STEPS``."""
    low, high = IMPUTER_STEPS
    return int(min(high, max(low, math.ceil(IMPUTER_EPOCHS * n_rows / batch_size))))


def detector_steps(n_rows: int, batch_size: int) -> int:
    """The detector's default: a fixed :data:`DETECTOR_STEPS` (a detector trained on contaminated rows must
    not learn to reconstruct its anomalies too well, so it trains briefly whatever the table's size)."""
    del n_rows, batch_size
    return DETECTOR_STEPS
