"""Choose the CPU attention kernel for one model on this machine by measuring the model's own step.

``MASKLAB_CPU_ATTENTION=sdpa|bmm`` forces a kernel; ``auto`` (default) times ``step`` (one forward + backward
of the model's first batch) with the model's attention on SDPA (torch's fused CPU kernels) and on
:func:`~masklab.nn.attention.bmm_attention` (two batched GEMMs around a softmax), interleaved, and picks
``bmm`` only when it is faster by more than ``margin``, so noise never makes the default slower than SDPA.
The verdict is cached per CPU model, torch version, thread count and workload (:mod:`masklab.core.probe`).
Both kernels compute the same fp32 softmax attention; only the order of the sums differs (~1e-7 relative).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from masklab.core.probe import cpu_model_name, machine_key, read_cached, time_interleaved, write_cached
from masklab.nn.attention import CpuKernel, MaskedSelfAttention, use_cpu_attention

PROBE_KIND = "cpu_attention"
ENV_VAR = "MASKLAB_CPU_ATTENTION"
_KERNELS: tuple[CpuKernel, ...] = ("sdpa", "bmm")


@dataclass(frozen=True)
class AttentionChoice:
    """The CPU attention kernel picked for a model (``kernel``) and why, in words (``reason``)."""

    kernel: CpuKernel
    reason: str


def cpu_attention_setting() -> str:
    """``MASKLAB_CPU_ATTENTION`` (``sdpa``, ``bmm`` or ``auto``; default ``auto``), validated."""
    value = os.environ.get(ENV_VAR, "auto").strip().lower()
    if value not in ("sdpa", "bmm", "auto"):
        raise ValueError(f"{ENV_VAR} must be 'sdpa', 'bmm' or 'auto', got {value!r}")
    return value


def _arm(model: nn.Module, kernel: CpuKernel, step: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        use_cpu_attention(model, kernel)
        step()

    return run


def choose_cpu_attention(
    model: nn.Module, step: Callable[[], None], *, workload: str, repeats: int = 3, margin: float = 0.05
) -> AttentionChoice | None:
    """Pick and apply (:func:`~masklab.nn.attention.use_cpu_attention`) the CPU attention kernel for ``model``;
    None when the model has no :class:`~masklab.nn.attention.MaskedSelfAttention` (nothing to choose).

    ``step`` runs the work to time and must leave the model as it found it; ``workload`` names it and joins
    the cache key.
    """
    if not any(isinstance(m, MaskedSelfAttention) for m in model.modules()):
        return None
    setting = cpu_attention_setting()
    if setting != "auto":
        use_cpu_attention(model, setting)  # type: ignore[arg-type]
        return AttentionChoice(setting, f"{ENV_VAR}={setting} (forced)")  # type: ignore[arg-type]
    key = {**machine_key(), "workload": workload}
    cached, source = read_cached(PROBE_KIND, key), "cached probe"
    if cached is None:
        times = time_interleaved({k: _arm(model, k, step) for k in _KERNELS}, repeats=repeats)
        winner = "bmm" if times["bmm"] < (1 - margin) * times["sdpa"] else "sdpa"
        cached = {"kernel": winner, "sdpa_s": times["sdpa"], "bmm_s": times["bmm"]}
        write_cached(PROBE_KIND, key, cached)
        source = "measured now"
    kernel: CpuKernel = "bmm" if cached.get("kernel") == "bmm" else "sdpa"
    use_cpu_attention(model, kernel)
    ratio = float(cached["sdpa_s"]) / max(float(cached["bmm_s"]), 1e-12)
    return AttentionChoice(
        kernel,
        f"auto: {source} on {cpu_model_name()}: bmm {1e3 * float(cached['bmm_s']):.1f} ms vs sdpa "
        f"{1e3 * float(cached['sdpa_s']):.1f} ms per step ({ratio:.2f}x; bmm needs > {margin:.0%} gain)",
    )
