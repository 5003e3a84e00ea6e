"""Choose the CPU attention kernel for one model on this machine by measuring the model's own step.

``MASKLAB_CPU_ATTENTION=sdpa|bmm`` forces a kernel; ``auto`` (default) times ``step`` (one forward + backward
of the model's first batch) with the model's attention on SDPA (torch's fused CPU kernels) and on
:func:`~masklab.nn.attention.bmm_attention` (two batched GEMMs around a softmax), interleaved, and picks
``bmm`` only when it is faster by more than ``margin``, so noise never makes the default slower than SDPA.
The verdict is cached per CPU model, torch version, thread count and workload (:mod:`masklab.core.probe`).
Both kernels compute the same fp32 softmax attention; only the order of the sums differs (~1e-7 relative).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from masklab.core.probe import choose_by_timing, env_setting, time_interleaved
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
    return env_setting(ENV_VAR, _KERNELS)


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
    choice = choose_by_timing(
        PROBE_KIND,
        {k: _arm(model, k, step) for k in _KERNELS},
        setting=cpu_attention_setting(),
        env_var=ENV_VAR,
        key={"workload": workload},
        field="kernel",
        repeats=repeats,
        margin=margin,
        timer=time_interleaved,  # this module's name, so a test can stand in for the clock
    )
    use_cpu_attention(model, choice.name)
    return AttentionChoice(choice.name, choice.reason)
