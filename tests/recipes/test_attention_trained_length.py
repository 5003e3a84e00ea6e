"""Text attention reads no more tokens than the run was trained on (text.json's seq_len), as embed and predict:
positions past it have untrained position embeddings."""

from __future__ import annotations

from types import SimpleNamespace

import masklab.recipes.attention_maps as maps
import masklab.recipes.mlm as mlm


def limits(monkeypatch, info, max_tokens=None):
    model = SimpleNamespace(config=SimpleNamespace(bert=SimpleNamespace(max_tokens=512)))
    monkeypatch.setattr(mlm, "load_mlm_run", lambda run, device: (model, None, info))
    seen = {}

    def weights(model, tokenizer, kind, text, limit, why="the model's limit"):
        seen.update(limit=limit, why=why)
        return [], [], []

    monkeypatch.setattr(maps, "text_attention_weights", weights)
    maps.text_attention("run", "some text", "mlm", "cpu", max_tokens)
    return seen["limit"], seen["why"]


def test_the_trained_sequence_length_caps_the_tokens_read(monkeypatch):
    limit, why = limits(monkeypatch, {"seq_len": 128})
    assert limit == 128
    assert "trained on 128-token sequences" in why and "text.json" in why


def test_a_smaller_max_tokens_and_a_run_without_text_json(monkeypatch):
    assert limits(monkeypatch, {"seq_len": 128}, max_tokens=48) == (48, "--max-tokens")
    assert limits(monkeypatch, {}) == (512, "the model's limit")
