"""The model-kind whitelist used to rebuild models from saved runs."""

import pytest
import torch
from train_tiny import TinyData, TinyModel, make_config

from masklab.models import registry
from masklab.train import fit
from masklab.train.checkpoint import load_model


@pytest.fixture
def tiny_kind(monkeypatch):
    # Registered only for the test: the real whitelist starts empty.
    monkeypatch.setattr(registry, "MODEL_KINDS", {})
    registry.register_kind("tiny-test", "train_tiny", "TinyModel")
    return registry.MODEL_KINDS


def test_build_model_from_whitelist(tiny_kind):
    model = registry.build_model({"kind": "tiny-test", "model": {"dim": 4, "hidden": 6}})
    assert isinstance(model, TinyModel) and model.inp.weight.shape == (6, 4)
    registry.register_kind("tiny-test", "train_tiny", "TinyModel")  # idempotent
    with pytest.raises(ValueError, match="already registered"):
        registry.register_kind("tiny-test", "os", "system")


def test_unknown_kind_lists_known(tiny_kind):
    with pytest.raises(ValueError, match=r"unknown model kind 'mae'; known kinds: tiny-test"):
        registry.build_model({"kind": "mae", "model": {}})
    with pytest.raises(ValueError, match="'kind' and 'model'"):
        registry.build_model({"model": {}})


def test_load_model_from_run(tiny_kind, tmp_path):
    torch.manual_seed(0)
    model = TinyModel()
    fit(model, TinyData(), make_config(steps=3), tmp_path, model_config=model.config(), progress=False)
    loaded = load_model(tmp_path)
    assert not loaded.training
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
