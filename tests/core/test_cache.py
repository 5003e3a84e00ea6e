"""One cache directory, one variable: ``MASKLAB_CACHE_DIR`` for the probe verdicts and the generated data sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from masklab.core.cache import cache_dir
from masklab.core.probe import cache_path
from masklab.data.synthetic_segmentation import _cache_path


def test_every_cache_lives_under_masklab_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "ignored"))  # the old name loses to the new one
    assert cache_dir() == tmp_path
    assert cache_path("cpu_linear") == tmp_path / "cpu_linear.json"
    assert _cache_path(10, 0).parent == tmp_path


def test_default_and_the_deprecated_name(monkeypatch, tmp_path):
    monkeypatch.delenv("MASKLAB_CACHE_DIR", raising=False)
    monkeypatch.delenv("MASKLAB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == Path.home() / ".cache" / "masklab"
    monkeypatch.setenv("MASKLAB_CACHE", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="MASKLAB_CACHE_DIR"):
        assert cache_dir() == tmp_path / "old"
        assert _cache_path(10, 0).parent == tmp_path / "old"
