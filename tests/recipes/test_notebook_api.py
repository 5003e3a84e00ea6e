"""Recipes are plain typed functions: a notebook trains and uses a run with no argparse, and gets results back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import masklab.recipes as recipes
from masklab.recipes import TrainOptions, impute, pretrain_table
from masklab.train import FitResult


def _csv(path, n=48):
    rng = np.random.default_rng(0)
    a = rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "b": 2 * a + 0.1 * rng.normal(size=n), "c": rng.choice(["x", "y"], size=n)})
    frame.loc[[1, 4], "a"] = np.nan
    frame.to_csv(path, index=False)
    return path


def test_pretrain_and_impute_from_python(tmp_path):
    data = _csv(tmp_path / "t.csv")
    result = pretrain_table(tmp_path / "run", data=str(data), preset="table-tiny",
                            train=TrainOptions(steps=2, batch_size=16, device="cpu", log_every=1))  # fmt: skip
    assert isinstance(result, FitResult) and result.step == 2
    recorded = json.loads((tmp_path / "run" / "arguments.json").read_text())
    assert recorded["recipe"] == "pretrain_table" and recorded["arguments"]["train"]["steps"] == 2
    report = impute(tmp_path / "run", data, tmp_path / "filled.csv")
    assert report["filled"] == {"a": 2, "b": 0, "c": 0} and report["rows"] == 48
    assert pd.read_csv(tmp_path / "filled.csv")["a"].notna().all()


def test_exports_are_lazy_and_complete():
    for name in recipes.__all__:
        assert callable(getattr(recipes, name)), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recipes.nope  # noqa: B018
