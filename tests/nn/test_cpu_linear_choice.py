"""The CPU GEMM library is chosen per machine: forced by MASKLAB_CPU_LINEAR or measured once and cached; models
keep plain ``nn.Linear`` layers by default, so tracing, export and dynamic quantization work unchanged."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from masklab.models.clm import GPT, GPTConfig
from masklab.models.mae import MAE
from masklab.models.mlm import BertForMLM, MLMConfig
from masklab.models.mlm.bert import BertConfig
from masklab.nn import cpu_linear as lin_mod
from masklab.nn.cpu_linear import Linear, cpu_linear_backend, get_cpu_linear_backend, use_cpu_linear
from masklab.nn.cpu_linear_probe import choose_cpu_linear

needs_onednn = pytest.mark.skipif(not lin_mod._onednn_available(), reason="PyTorch built without oneDNN")


def _models():
    torch.manual_seed(0)
    mae = MAE.from_preset("mae-tiny", channels=1).eval()
    bert = BertForMLM(MLMConfig(bert=BertConfig(vocab_size=60, dim=64, depth=2, heads=4, max_len=32), mask_id=4))
    gpt = GPT(GPTConfig(vocab_size=60, context=32, dim=64, depth=2, heads=4)).eval()
    return mae.eval(), bert.eval(), gpt


class _MLMLogits(nn.Module):
    """BERT-MLM as a plain tensor function (all positions' logits) for tracing/export."""

    def __init__(self, model: BertForMLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.model(ids)  # (B, L, D)
        return self.model.head(hidden, self.model.bert.embeddings.word.weight)  # (B, L, V)


class _MAEPred(nn.Module):
    def __init__(self, model: MAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model(images, noise=noise).pred


def _cases():
    mae, bert, gpt = _models()
    g = torch.Generator().manual_seed(1)
    return [
        ("mae", _MAEPred(mae), (torch.rand(64, 1, 16, 16, generator=g), torch.rand(64, 16, generator=g))),
        ("bert-mlm", _MLMLogits(bert), (torch.randint(5, 60, (16, 32), generator=g),)),
        ("gpt", gpt, (torch.randint(0, 60, (16, 32), generator=g),)),
    ]


def test_models_build_plain_linears_by_default():
    assert lin_mod.cpu_linear_setting() in ("auto", "torch", "onednn")
    for _, module, _ in _cases():
        kinds = {type(m) for m in module.modules() if isinstance(m, nn.Linear)}
        assert kinds == {nn.Linear}


@pytest.mark.parametrize("case", ["mae", "bert-mlm", "gpt"])
def test_jit_trace_and_export_with_default_settings(case):
    _, module, args = next(c for c in _cases() if c[0] == case)
    with torch.no_grad():
        expected = module(*args)
        traced = torch.jit.trace(module, args, check_trace=False)
        torch.testing.assert_close(traced(*args), expected, rtol=1e-5, atol=1e-5)
    exported = torch.export.export(module, args)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*args), expected, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_onednn_steps_aside_under_trace_and_export():
    _, module, args = _cases()[2]
    with cpu_linear_backend("onednn", module), torch.no_grad():
        assert type(module.decoder.blocks[0].mlp.fc1) is Linear
        expected = module(*args)
        traced = torch.jit.trace(module, args, check_trace=False)
        assert "mkldnn" not in str(traced.graph)
        torch.testing.assert_close(traced(*args), expected, rtol=1e-5, atol=1e-5)
        exported = torch.export.export(module, args)
        assert "mkldnn" not in str(exported.graph)
    assert type(module.decoder.blocks[0].mlp.fc1) is nn.Linear  # plain again after the block


def test_quantize_dynamic_quantizes_every_linear():
    _, _, gpt = _models()
    quantized = torch.ao.quantization.quantize_dynamic(gpt, {nn.Linear}, dtype=torch.qint8)
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert not any(isinstance(m, nn.Linear) for m in quantized.modules())  # no float linear left behind
    assert sum(isinstance(m, dynamic) for m in quantized.modules()) == 4 * 2  # qkv, proj, fc1, fc2 per layer
    ids = torch.randint(0, 60, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(quantized(ids), gpt(ids), rtol=0.1, atol=0.15)


def test_forced_setting_is_applied_and_said(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_LINEAR", "torch")
    _, _, gpt = _models()
    choice = choose_cpu_linear(gpt, lambda: None, workload="test")
    assert choice.backend == "torch" and "MASKLAB_CPU_LINEAR=torch (forced)" in choice.reason
    assert not (tmp_path / "cpu_linear.json").exists()  # nothing measured


@needs_onednn
def test_auto_measures_once_then_reads_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MASKLAB_CPU_LINEAR", "auto")
    before = get_cpu_linear_backend()
    _, _, gpt = _models()
    ids = torch.randint(0, 60, (8, 32))
    calls = []

    def step() -> None:
        calls.append(type(gpt.decoder.blocks[0].mlp.fc1))
        gpt(ids).sum().backward()
        gpt.zero_grad(set_to_none=True)

    try:
        first = choose_cpu_linear(gpt, step, workload="train ids=8x32", repeats=2)
        assert set(calls) == {nn.Linear, Linear}  # both libraries were timed on the model's own step
        assert "measured now" in first.reason and first.backend in ("onednn", "torch")
        kinds = {type(m) for m in gpt.modules() if isinstance(m, nn.Linear)}
        assert kinds == {Linear if first.backend == "onednn" else nn.Linear}
        entry = next(iter(json.loads((tmp_path / "cpu_linear.json").read_text()).values()))
        assert entry["key"]["torch"] == torch.__version__ and entry["key"]["linears"]
        calls.clear()
        second = choose_cpu_linear(gpt, step, workload="train ids=8x32")
        assert calls == [] and "cached probe" in second.reason and second.backend == first.backend
    finally:
        use_cpu_linear(gpt, before)
        use_cpu_linear(gpt, "torch")
