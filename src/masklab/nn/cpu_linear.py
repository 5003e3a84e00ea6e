"""Linear layers on the faster of PyTorch's two CPU fp32 GEMM libraries, with the same IEEE fp32 arithmetic.

PyTorch's CPU ``F.linear`` / ``torch.mm`` call MKL. On CPUs where MKL does not run its AVX-512 kernels (measured on
an AMD EPYC Zen 5: 90-100 GFLOPS on one core at every shape, vs 200-220 GFLOPS from oneDNN for the (rows, 128..1536)
shapes of masklab's models; ``python bench/linear.py`` prints the table for the machine it runs on) the oneDNN fp32
kernels that PyTorch already ships for its Inductor CPU path (``torch.ops.mkldnn._linear_pointwise``) are about 2x
faster. Both accumulate in fp32 with FMAs; only the order of the sums differs, so results agree to ~1e-7 relative
(not bit for bit — pick one backend per experiment if you need bitwise reproducibility).

:func:`linear` takes the oneDNN path only where it computes the same fp32 product and pays off: CPU, float32
input/weight/bias, grad mode or not, no autocast, not under ``torch.compile`` / TorchScript / ``torch.func``
transforms, plain tensors (not DTensor or other subclasses), and a product large enough that oneDNN's fixed
~15 us call cost is amortised (at least 4 rows and 2**20 multiply-adds; single-row KV-cache decoding stays on
MKL's GEMV, which is faster there). Everything else is ``F.linear``. Its backward runs the two gradient GEMMs the
same way; double backward is not supported on that path (use ``cpu_linear_backend("torch")`` for gradient
penalties).

Backend choice, per machine: ``MASKLAB_CPU_LINEAR=onednn|torch|auto`` (default ``auto``). Models build plain
``nn.Linear`` layers, so a model fresh from its config traces, exports and quantizes (``quantize_dynamic``) like
any PyTorch model; :func:`use_cpu_linear` (or ``cpu_linear_backend(backend, model)``) turns a model's
``nn.Linear`` layers into :class:`Linear` (same parameters and state-dict keys) for a training or inference
loop, and back. ``auto`` starts on ``torch``; :mod:`masklab.nn.cpu_linear_probe` measures the model's own step
on both libraries once per machine (cached on disk) and switches to ``onednn`` only where it is faster. Whatever
the setting, the oneDNN path steps aside under ``torch.jit.trace`` / scripting, ``torch.export``,
``torch.compile``, autocast and ``torch.func`` transforms.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CpuLinearBackend = Literal["onednn", "torch"]
CpuLinearSetting = Literal["onednn", "torch", "auto"]
ENV_VAR = "MASKLAB_CPU_LINEAR"

MIN_ROWS = 4
MIN_MACS = 2**20


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def cpu_linear_setting() -> CpuLinearSetting:
    """``MASKLAB_CPU_LINEAR`` (``onednn``, ``torch`` or ``auto``; default ``auto``), validated."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value not in ("onednn", "torch", "auto"):
        raise ValueError(f"{ENV_VAR} must be 'onednn', 'torch' or 'auto', got {value!r}")
    return value  # type: ignore[return-value]


def _backend_from_env() -> CpuLinearBackend:
    """The backend before any probe: the forced one, or ``torch`` (``auto`` until a probe says otherwise)."""
    value = cpu_linear_setting()
    return "onednn" if value == "onednn" and _onednn_available() else "torch"


_BACKEND: CpuLinearBackend = _backend_from_env()


def get_cpu_linear_backend() -> CpuLinearBackend:
    """The CPU fp32 GEMM library :func:`linear` uses now: ``"onednn"`` or ``"torch"`` (MKL via ``F.linear``)."""
    return _BACKEND


def set_cpu_linear_backend(backend: CpuLinearBackend) -> None:
    """Use ``backend`` for CPU fp32 linears from now on (``ValueError`` if unknown or oneDNN is not built in)."""
    global _BACKEND
    if backend not in ("onednn", "torch"):
        raise ValueError(f"backend must be 'onednn' or 'torch', got {backend!r}")
    if backend == "onednn" and not _onednn_available():
        raise ValueError("backend 'onednn' needs a PyTorch built with oneDNN (torch.backends.mkldnn)")
    _BACKEND = backend


def use_cpu_linear(model: nn.Module, backend: CpuLinearBackend) -> nn.Module:
    """Switch ``model``'s linear layers (in place; same parameters) and the global backend to ``backend``:
    ``"onednn"`` makes every plain ``nn.Linear`` a :class:`Linear`, ``"torch"`` makes them plain again (what
    ``torch.ao.quantization.quantize_dynamic`` and other type-based tools expect). Returns ``model``."""
    set_cpu_linear_backend(backend)
    for module in model.modules():
        cls = type(module)
        if backend == "onednn" and cls is nn.Linear:
            module.__class__ = Linear
        elif backend == "torch" and cls is Linear:
            module.__class__ = nn.Linear
    return model


@contextmanager
def cpu_linear_backend(backend: CpuLinearBackend, *models: nn.Module) -> Iterator[None]:
    """Context manager: :func:`set_cpu_linear_backend` (and :func:`use_cpu_linear` on ``models``) inside the
    ``with`` block, the previous backend (and plain ``nn.Linear`` layers) after it."""
    previous = _BACKEND
    set_cpu_linear_backend(backend)
    for model in models:
        use_cpu_linear(model, backend)
    try:
        yield
    finally:
        for model in models:
            use_cpu_linear(model, "torch")
        set_cpu_linear_backend(previous)


def _dnn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` on oneDNN; ``x (..., K)``, ``weight (N, K)`` (strided views are fine)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _worth_it(rows: int, inner: int, cols: int) -> bool:
    return rows >= MIN_ROWS and rows * inner * cols >= MIN_MACS


def _mm(a: Tensor, b_t: Tensor) -> Tensor:
    """``a (M, K) @ b_t.T`` with ``b_t (N, K)``: oneDNN when the product is large enough, else MKL."""
    if _worth_it(a.shape[0], a.shape[1], b_t.shape[0]):
        return _dnn(a, b_t, None)
    return a @ b_t.t()


class _OneDNNLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _dnn(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        n, k = weight.shape
        g = grad_out.reshape(-1, n)  # (M, N)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _mm(g, weight.t()).view(x.shape)  # (M, N) @ (N, K)
        if ctx.needs_input_grad[1]:
            grad_w = _mm(g.t(), x.reshape(-1, k).t())  # (N, M) @ (M, K)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


def _tracing() -> bool:
    """True while TorchScript, ``torch.jit.trace``, ``torch.export`` or ``torch.compile`` records the model: the
    oneDNN op is not part of the graphs they build, so ``F.linear`` is used there."""
    return (
        torch.jit.is_scripting()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
    )


def _fast_path_ok(x: Tensor, weight: Tensor, bias: Tensor | None) -> bool:
    # Cheapest tests first: this runs on every linear call, including single-token decoding steps.
    if _BACKEND != "onednn" or x.dim() < 2 or weight.dim() != 2:
        return False
    out_features, in_features = weight.shape
    if not _worth_it(x.numel() // max(in_features, 1), in_features, out_features):
        return False
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if bias is not None and bias.dtype != torch.float32:
        return False
    if _tracing() or torch.is_autocast_enabled("cpu"):
        return False
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if any(type(t) not in (Tensor, nn.Parameter) or t.layout != torch.strided for t in tensors):
        return False
    return not (
        torch._C._functorch.is_functorch_wrapped_tensor(x) or torch._C._functorch.is_functorch_wrapped_tensor(weight)
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear``: ``x (..., K) @ weight (N, K).T + bias (N,)`` -> ``(..., N)``, on oneDNN where that is faster."""
    if _fast_path_ok(x, weight, bias):
        if torch.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
        ):
            return _OneDNNLinear.apply(x, weight, bias)
        return _dnn(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, state-dict keys and init) whose forward is :func:`linear`; models build
    plain ``nn.Linear`` and :func:`use_cpu_linear` swaps the class for a loop."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)
