"""The CPU attention kernel (SDPA or bmm) is chosen per model and machine: forced by MASKLAB_CPU_ATTENTION or
measured once on the model's own step and cached; the winner must beat SDPA by the margin."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from masklab.nn import Encoder, TransformerConfig
from masklab.nn import cpu_attention_probe as probe_mod
from masklab.nn.attention import MaskedSelfAttention
from masklab.nn.cpu_attention_probe import choose_cpu_attention


def _kernels(model: nn.Module) -> set[str]:
    return {m.cpu_kernel for m in model.modules() if isinstance(m, MaskedSelfAttention)}


def _encoder() -> Encoder:
    torch.manual_seed(0)
    return Encoder(TransformerConfig(32, 2, 2, 64))


def test_forced_setting_is_applied_and_said(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "bmm")
    model = _encoder()
    choice = choose_cpu_attention(model, lambda: None, workload="test")
    assert choice is not None and choice.kernel == "bmm" and "MASKLAB_CPU_ATTENTION=bmm (forced)" in choice.reason
    assert _kernels(model) == {"bmm"}
    assert not (tmp_path / "cpu_attention.json").exists()  # nothing measured
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "flash")
    with pytest.raises(ValueError, match="MASKLAB_CPU_ATTENTION must be 'sdpa', 'bmm' or 'auto', got 'flash'"):
        choose_cpu_attention(model, lambda: None, workload="test")


def test_a_model_without_attention_has_nothing_to_choose(monkeypatch):
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "auto")
    assert choose_cpu_attention(nn.Linear(3, 3), lambda: None, workload="test") is None


@pytest.mark.parametrize("fast", ["bmm", "sdpa"])
def test_auto_measures_both_once_then_reads_the_cache(monkeypatch, tmp_path, fast):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "auto")
    model = _encoder()
    seen: list[str] = []

    def fake_timer(arms, repeats=3):  # the arms run the real step; the times are made up to test the rule
        for run in arms.values():
            run()
        return {"sdpa": 1.0 if fast == "bmm" else 0.5, "bmm": 0.5 if fast == "bmm" else 1.0}

    def step() -> None:
        seen.append(next(iter(_kernels(model))))

    monkeypatch.setattr(probe_mod, "time_interleaved", fake_timer)
    first = choose_cpu_attention(model, step, workload="train x=4x7")
    assert first is not None and first.kernel == fast and "measured now" in first.reason
    assert set(seen) == {"sdpa", "bmm"} and _kernels(model) == {fast}
    entry = next(iter(json.loads((tmp_path / "cpu_attention.json").read_text()).values()))
    assert entry["key"]["torch"] == torch.__version__
    seen.clear()
    second = choose_cpu_attention(model, step, workload="train x=4x7")
    assert second is not None and seen == [] and "cached probe" in second.reason and second.kernel == fast


def test_bmm_must_win_by_the_margin(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "auto")
    monkeypatch.setattr(probe_mod, "time_interleaved", lambda arms, repeats=3: {"sdpa": 1.0, "bmm": 0.97})
    choice = choose_cpu_attention(_encoder(), lambda: None, workload="noise")
    assert choice is not None and choice.kernel == "sdpa"  # 3% faster is within noise
