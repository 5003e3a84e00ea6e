"""masklab.nn.cpu_linear: the oneDNN path equals F.linear (float64 reference, full tensors) and falls back safely."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from masklab.models.clm import GPT, GPTConfig
from masklab.models.mae import MAE
from masklab.nn import cpu_linear as lin_mod
from masklab.nn.cpu_linear import Linear, cpu_linear_backend, get_cpu_linear_backend, linear, set_cpu_linear_backend

needs_onednn = pytest.mark.skipif(not lin_mod._onednn_available(), reason="PyTorch built without oneDNN")


@pytest.fixture(autouse=True)
def _onednn_selected():
    """These tests exercise the oneDNN path itself: select it (the default is chosen per machine, see
    test_cpu_linear_choice.py)."""
    if not lin_mod._onednn_available():
        yield
        return
    with cpu_linear_backend("onednn"):
        yield


def _reference_grads(x, weight, bias, grad_out):
    """Float64 forward and gradients of ``x @ weight.T + bias``."""
    leaves = [t.detach().double().requires_grad_() for t in (x, weight, bias) if t is not None]
    out = F.linear(*leaves)
    out.backward(grad_out.double())
    return out.detach(), [t.grad for t in leaves]


@needs_onednn
@pytest.mark.parametrize(
    ("x_shape", "out_features", "bias"),
    [((4, 64, 128), 384, True), ((1024, 256), 64, False), ((2, 3, 50, 96), 200, True)],
)
def test_fast_path_matches_float64_like_f_linear(x_shape, out_features, bias):
    torch.manual_seed(0)
    layer = Linear(x_shape[-1], out_features, bias=bias)
    x = torch.randn(*x_shape, requires_grad=True)
    assert lin_mod._fast_path_ok(x, layer.weight, layer.bias)
    grad_out = torch.randn(*x_shape[:-1], out_features)
    ref_out, ref_grads = _reference_grads(x, layer.weight, layer.bias, grad_out)

    def run(backend):
        x.grad = None
        layer.zero_grad(set_to_none=True)
        with cpu_linear_backend(backend):
            out = layer(x)
        out.backward(grad_out)
        return [out.detach(), x.grad, layer.weight.grad] + ([layer.bias.grad] if bias else [])

    for ours, mkl, ref in zip(run("onednn"), run("torch"), [ref_out, *ref_grads], strict=True):
        assert ours.shape == ref.shape and ours.dtype == torch.float32
        err, mkl_err = (ours.double() - ref).abs().max(), (mkl.double() - ref).abs().max()
        # Same fp32 arithmetic, another summation order: the error is of the order of torch's own.
        assert err <= 4 * mkl_err + 1e-6, (err, mkl_err)
        torch.testing.assert_close(ours.double(), ref, rtol=1e-5, atol=1e-6 * ref.abs().max().item())


@needs_onednn
def test_non_contiguous_input_and_no_grad():
    layer = Linear(32, 512)
    x = torch.randn(128, 64, 32).transpose(0, 1)  # (64, 128, 32), not contiguous
    with torch.no_grad():
        out = layer(x)
    assert lin_mod._fast_path_ok(x, layer.weight, layer.bias)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize(
    "case",
    ["float64", "few_rows", "small_product", "autocast", "one_dim"],
)
def test_falls_back_to_f_linear(case):
    layer = Linear(128, 384)
    x = torch.randn(64, 128)
    if case == "float64":
        layer, x = layer.double(), x.double()
    elif case == "few_rows":
        x = torch.randn(3, 128)
    elif case == "small_product":
        layer, x = Linear(8, 8), torch.randn(64, 8)
    elif case == "one_dim":
        x = torch.randn(128)
    if case == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not lin_mod._fast_path_ok(x, layer.weight, layer.bias)
            assert layer(x).dtype == torch.bfloat16
        return
    assert not lin_mod._fast_path_ok(x, layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=0, atol=0)


def test_torch_func_transforms_use_the_autograd_formula():
    layer, x = Linear(128, 384), torch.randn(64, 128)
    got = torch.func.grad(lambda inp: linear(inp, layer.weight, layer.bias).square().sum())(x)
    x_ref = x.clone().requires_grad_()
    F.linear(x_ref, layer.weight, layer.bias).square().sum().backward()
    torch.testing.assert_close(got, x_ref.grad, rtol=1e-5, atol=1e-5)


def test_linear_is_a_drop_in_nn_linear():
    torch.manual_seed(0)
    ours = Linear(16, 8)
    torch.manual_seed(0)
    theirs = nn.Linear(16, 8)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same default init from the same seed


def test_backend_switch_validates_and_restores():
    before = get_cpu_linear_backend()
    with pytest.raises(ValueError, match="'onednn' or 'torch'"):
        set_cpu_linear_backend("mkl")  # type: ignore[arg-type]
    with cpu_linear_backend("torch"):
        assert get_cpu_linear_backend() == "torch"
        assert not lin_mod._fast_path_ok(torch.randn(64, 128), torch.randn(384, 128), None)
    assert get_cpu_linear_backend() == before


def test_env_variable_is_validated(monkeypatch):
    monkeypatch.setenv("MASKLAB_CPU_LINEAR", "blas")
    with pytest.raises(ValueError, match="MASKLAB_CPU_LINEAR"):
        lin_mod._backend_from_env()
    monkeypatch.setenv("MASKLAB_CPU_LINEAR", "torch")
    assert lin_mod._backend_from_env() == "torch"


@needs_onednn
def test_models_agree_across_backends():
    """Whole models (MAE loss and grads, GPT logits) give the same numbers on either GEMM library."""
    torch.manual_seed(0)
    mae = MAE.from_preset("mae-tiny", channels=3)
    images, noise = torch.rand(64, 3, 16, 16), torch.rand(64, 16)
    gpt = GPT(GPTConfig(vocab_size=70, context=32, dim=64, depth=2, heads=4))
    ids = torch.randint(0, 70, (8, 32))
    results = {}
    for backend in ("torch", "onednn"):
        with cpu_linear_backend(backend, mae, gpt):
            assert type(mae.encoder.blocks[0].mlp.fc1) is (Linear if backend == "onednn" else nn.Linear)
            mae.zero_grad(set_to_none=True)
            loss = mae(images, noise=noise).loss
            loss.backward()
            grads = [p.grad.clone() for p in mae.parameters() if p.grad is not None]
            results[backend] = (loss.detach(), grads, gpt(ids).detach())
    (loss_a, grads_a, logits_a), (loss_b, grads_b, logits_b) = results["torch"], results["onednn"]
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_b, logits_a, rtol=1e-5, atol=1e-5)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
