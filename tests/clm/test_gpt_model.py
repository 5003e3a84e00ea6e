"""GPT config, presets, registry rebuild and a short fit() run."""

import pytest
import torch

from masklab.core.contract import preset_config, saved_config
from masklab.data.lm import LMWindows
from masklab.models.clm import GPT, GPTConfig
from masklab.models.clm.generation import generate
from masklab.models.clm.model import PRESETS
from masklab.models.registry import build_model
from masklab.train import TrainConfig, fit
from masklab.train.checkpoint import load_model


def test_config_round_trip_and_registry():
    cfg = preset_config(GPTConfig, PRESETS, "gpt-tiny", vocab_size=50, dropout=0.1)
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    model = build_model({"kind": "clm", "model": cfg.to_dict()})
    assert isinstance(model, GPT) and model.config == cfg
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        GPTConfig.from_dict({"vocab_size": 5, "width": 3})
    with pytest.raises(ValueError, match="unknown GPTConfig preset"):
        preset_config(GPTConfig, PRESETS, "gpt-huge", vocab_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        GPTConfig(vocab_size=0)


def test_presets():
    assert set(PRESETS) == {"gpt-tiny", "gpt-char", "gpt2-small"}
    char = preset_config(GPTConfig, PRESETS, "gpt-char", vocab_size=65)
    assert (char.depth, char.heads, char.dim, char.context) == (4, 4, 128, 64)  # nanoGPT's CPU recipe
    small = preset_config(GPTConfig, PRESETS, "gpt2-small")
    assert (small.vocab_size, small.dim, small.depth, small.context) == (50257, 768, 12, 1024)


def test_tied_and_untied_heads():
    tied = GPT(GPTConfig(vocab_size=20, context=8, dim=16, depth=1, heads=2))
    untied = GPT(GPTConfig(vocab_size=20, context=8, dim=16, depth=1, heads=2, tie_embeddings=False))
    assert tied.lm_head is None and untied.num_parameters() == tied.num_parameters() + 20 * 16


def test_fit_learns_a_repeating_sequence_and_reloads(tmp_path):
    tokens = torch.arange(10).repeat(60)  # a deterministic cycle: the next token is always predictable
    model = GPT(GPTConfig(vocab_size=10, context=12, dim=32, depth=1, heads=2))
    cfg = TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, log_every=20, ckpt_every=60, device="cpu")
    result = fit(model, LMWindows(tokens, 12), cfg, tmp_path, model_config=saved_config(model), progress=False)
    assert result.last_metrics["loss"] < 0.5
    reloaded = load_model(tmp_path)
    ids = tokens[:12][None]
    torch.testing.assert_close(reloaded(ids), model.eval()(ids))
    assert generate(reloaded, [[3, 4, 5]], max_new_tokens=6)[0] == [6, 7, 8, 9, 0, 1]
