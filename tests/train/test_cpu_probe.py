"""``precision="auto"`` on CPU and the GEMM library are chosen by a measured, cached probe, and said."""

from __future__ import annotations

import time

import pytest
import torch

from masklab.models.clm import GPT, GPTConfig
from masklab.train import cpu_probe
from masklab.train.cpu_probe import choose_cpu_precision, choose_cpu_speedups


def _sleepy(fp32_s: float, bf16_s: float, calls: list):
    def step(dtype):
        calls.append(dtype)
        time.sleep(bf16_s if dtype is torch.bfloat16 else fp32_s)

    return step


def test_bf16_only_where_the_probe_says_it_pays(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cpu_probe, "cpu_has_native_bf16", lambda: True)
    calls: list = []
    dtype, reason = choose_cpu_precision(_sleepy(0.02, 0.005, calls), workload="fast bf16")
    assert dtype is torch.bfloat16 and "precision auto -> bf16: measured now" in reason
    assert set(calls) == {None, torch.bfloat16}
    dtype, reason = choose_cpu_precision(_sleepy(0.005, 0.02, calls), workload="slow bf16")
    assert dtype is None and "precision auto -> fp32" in reason
    calls.clear()
    dtype, reason = choose_cpu_precision(_sleepy(1.0, 1.0, calls), workload="fast bf16")
    assert dtype is torch.bfloat16 and "cached probe" in reason and calls == []  # not measured again


def test_no_native_bf16_means_fp32_without_measuring(monkeypatch):
    monkeypatch.setattr(cpu_probe, "cpu_has_native_bf16", lambda: False)
    dtype, reason = choose_cpu_precision(lambda d: pytest.fail("measured"), workload="x")
    assert dtype is None and "no native bf16" in reason


def test_fit_level_choice_leaves_the_model_untouched(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_LINEAR", "auto")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context=16, dim=32, depth=1, heads=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = {"ids": torch.randint(0, 50, (4, 17))}
    _, notes = choose_cpu_speedups(model, batch, "auto")
    assert notes[0].startswith("precision auto -> ") and notes[1].startswith("GEMM ")
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    _, explicit = choose_cpu_speedups(model, batch, "fp32")
    assert explicit[0] == "precision fp32 (explicit)"
