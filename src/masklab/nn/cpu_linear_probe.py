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

from masklab.core.probe import choose_by_timing
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


def _without_probe(model: nn.Module, setting: str) -> str | None:
    """Why ``model`` stays on ``torch`` without a probe (oneDNN missing, or the model off CPU), else None."""
    if setting == "onednn" and not _onednn_available():
        return f"{ENV_VAR}={setting} (forced) (PyTorch has no oneDNN)"
    if setting != "auto":
        return None
    if not _onednn_available():
        return "auto: PyTorch built without oneDNN"
    device = next(model.parameters()).device
    if device.type != "cpu":
        return f"auto: model on {device.type}, the oneDNN path is CPU-only"
    return None


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
    without = _without_probe(model, setting)
    if without is not None:
        use_cpu_linear(model, "torch")
        return LinearChoice("torch", without)
    choice = choose_by_timing(
        PROBE_KIND,
        {b: _arm(model, b, step) for b in _BACKENDS},
        setting=setting,
        env_var=ENV_VAR,
        key={"workload": workload, "linears": linear_shapes(model)},
        field="backend",
        labels={"onednn": "oneDNN"},
        repeats=repeats,
        margin=margin,
        use_cache=use_cache,
    )
    use_cpu_linear(model, choice.name)
    return LinearChoice(choice.name, choice.reason)
