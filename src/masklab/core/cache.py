"""Where masklab keeps what it can rebuild (per-machine probe verdicts, generated built-in data sets).

One directory, one environment variable: ``$MASKLAB_CACHE_DIR``, default ``~/.cache/masklab``. The older
``$MASKLAB_CACHE`` (read by the synthetic segmentation set until issue 14) is still honoured when
``MASKLAB_CACHE_DIR`` is not set, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV_VAR = "MASKLAB_CACHE_DIR"
_DEPRECATED_ENV_VAR = "MASKLAB_CACHE"


def cache_dir() -> Path:
    """The cache directory: ``$MASKLAB_CACHE_DIR`` (``~`` expanded), else ``~/.cache/masklab``. Not created here:
    writers create it when they first write."""
    root = os.environ.get(ENV_VAR)
    if not root and os.environ.get(_DEPRECATED_ENV_VAR):
        warnings.warn(f"{_DEPRECATED_ENV_VAR} is deprecated; set {ENV_VAR} instead", DeprecationWarning, stacklevel=2)
        root = os.environ[_DEPRECATED_ENV_VAR]
    return Path(root).expanduser() if root else Path.home() / ".cache" / "masklab"
