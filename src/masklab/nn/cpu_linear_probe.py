"""Choose the CPU fp32 GEMM library for one model on this machine by measuring the model's own step.

``MASKLAB_CPU_LINEAR=onednn|torch`` forces a library; ``auto`` (default) times ``step`` (e.g. one forward +
backward of the model's first batch) with the model's linears on oneDNN and on ``F.linear``, interleaved, and
picks oneDNN only when it is faster by more than ``margin`` (so noise never makes the default slower than
``torch``). The verdict is cached per CPU model, torch version, thread count and the model's linear shapes
(:mod:`masklab.core.probe`), so the probe runs once per machine and model shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from masklab.core.probe import cpu_model_name, machine_key, read_cached, time_interleaved, write_cached
from masklab.nn.cpu_linear import (
    ENV_VAR,
    CpuLinearBackend,
    _onednn_available,
    cpu_linear_setting,
    use_cpu_linear,
)

PROBE_KIND = "cpu_linear"


@dataclass(frozen=True)
class LinearChoice:
    """The GEMM library picked for a model (``backend``) and why, in words (``reason``)."""

    backend: CpuLinearBackend
    reason: str


_BACKENDS: tuple[CpuLinearBackend, ...] = ("torch", "onednn")


def _arm(model: nn.Module, backend: CpuLinearBackend, step: Callable[[], None]) -> Callable[[], None]:
    """One timed call: ``model``'s linears (and the global backend) on ``backend``, then ``step``."""

    def run() -> None:
        use_cpu_linear(model, backend)
        step()

    return run


def linear_shapes(model: nn.Module) -> list[list[int]]:
    """``[in, out]`` of every linear layer of ``model``, sorted: the shape part of the probe's cache key."""
    return sorted([m.in_features, m.out_features] for m in model.modules() if isinstance(m, nn.Linear))


def choose_cpu_linear(
    model: nn.Module,
    step: Callable[[], None],
    *,
    workload: str,
    repeats: int = 3,
    margin: float = 0.05,
    use_cache: bool = True,
) -> LinearChoice:
    """Pick and apply (:func:`~masklab.nn.cpu_linear.use_cpu_linear`) the GEMM library for ``model``.

    ``step`` runs the work to time (it must leave the model as it found it: zero the gradients it makes);
    ``workload`` names what it does (e.g. ``"train batch=64"``) and joins the cache key.
    """
    setting = cpu_linear_setting()
    if setting != "auto":
        backend: CpuLinearBackend = "onednn" if setting == "onednn" and _onednn_available() else "torch"
        use_cpu_linear(model, backend)
        why = "" if backend == setting else " (PyTorch has no oneDNN)"
        return LinearChoice(backend, f"{ENV_VAR}={setting} (forced){why}")
    if not _onednn_available():
        use_cpu_linear(model, "torch")
        return LinearChoice("torch", "auto: PyTorch built without oneDNN")
    device = next(model.parameters()).device
    if device.type != "cpu":
        use_cpu_linear(model, "torch")
        return LinearChoice("torch", f"auto: model on {device.type}, the oneDNN path is CPU-only")
    key = {**machine_key(), "workload": workload, "linears": linear_shapes(model)}
    cached = read_cached(PROBE_KIND, key) if use_cache else None
    if cached is None:
        times = time_interleaved({b: _arm(model, b, step) for b in _BACKENDS}, repeats=repeats)
        winner = "onednn" if times["onednn"] < (1 - margin) * times["torch"] else "torch"
        cached = {"backend": winner, "onednn_s": times["onednn"], "torch_s": times["torch"]}
        if use_cache:
            write_cached(PROBE_KIND, key, cached)
        source = "measured now"
    else:
        source = "cached probe"
    backend = "onednn" if cached.get("backend") == "onednn" else "torch"
    use_cpu_linear(model, backend)
    ratio = float(cached["torch_s"]) / max(float(cached["onednn_s"]), 1e-12)
    rule = f"onednn needs > {margin:.0%} gain"
    return LinearChoice(
        backend,
        f"auto: {source} on {cpu_model_name()}: oneDNN {1e3 * float(cached['onednn_s']):.1f} ms vs torch "
        f"{1e3 * float(cached['torch_s']):.1f} ms per step ({ratio:.2f}x; {rule})",
    )
