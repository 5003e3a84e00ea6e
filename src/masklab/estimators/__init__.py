"""scikit-learn estimators on the table model: :class:`MaskedImputer` and :class:`MaskedAnomalyDetector`.

``import masklab.estimators`` loads neither scikit-learn nor torch: each name below is imported from its own
module the first time it is used (PEP 562 ``__getattr__``).

- :mod:`~masklab.estimators.base`: input checks, training, safetensors save / load shared by both.
- :mod:`~masklab.estimators.imputer`: :class:`MaskedImputer` (ReMasker imputation).
- :mod:`~masklab.estimators.detector`: :class:`MaskedAnomalyDetector` (masked reconstruction scores).
- :mod:`~masklab.estimators.explain`: which cells make a row's score, and what the model expected there.
- :mod:`~masklab.estimators.error_models`: the per-column Gaussian / Cauchy error choice.
- :mod:`~masklab.estimators.budget`: default training lengths (no scikit-learn, used by the CLI too).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

ESTIMATOR_FILE = "estimator.json"  # what an estimator's save writes beside model.safetensors (class, params, state)

_WHERE = {
    "MaskedImputer": "imputer",
    "MaskedAnomalyDetector": "detector",
    "auto_steps": "budget",
    "detector_steps": "budget",
    "cauchy_fits_better": "error_models",
    "apply_error_models": "error_models",
}
__all__ = [
    "MaskedAnomalyDetector",
    "MaskedImputer",
    "apply_error_models",
    "auto_steps",
    "cauchy_fits_better",
    "detector_steps",
]

if TYPE_CHECKING:
    from masklab.estimators.budget import auto_steps, detector_steps
    from masklab.estimators.detector import MaskedAnomalyDetector
    from masklab.estimators.error_models import apply_error_models, cauchy_fits_better
    from masklab.estimators.imputer import MaskedImputer


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'masklab.estimators' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"masklab.estimators.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
