"""Shared by bench/mae.py, bench/clm.py and bench/mlm.py: what ``auto`` picks on this CPU (GEMM library and
precision, with the probe's reason) and the forced alternatives, as arms to time against Hugging Face.

An arm is ``(label, gemm, amp_dtype)``; :func:`run_arm` applies its GEMM library to a model for one call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from masklab.core.probe import cpu_model_name
from masklab.nn.cpu_linear import _onednn_available, cpu_linear_backend
from masklab.nn.cpu_linear_probe import choose_cpu_linear
from masklab.train.cpu_probe import choose_cpu_precision, cpu_has_native_bf16

Arm = tuple[str, str, "torch.dtype | None"]


def default_and_forced_arms(
    model: torch.nn.Module, step: Callable[[torch.dtype | None], None], workload: str
) -> tuple[list[Arm], list[str]]:
    """Run the probes ``fit`` runs (cached per machine) for ``model`` and ``step(dtype)``; returns the arms
    ``default (auto)`` (labelled with the forced setting it equals) and every other forced setting (each GEMM
    library at fp32 and, on a CPU with native bf16, forced bf16), plus the sentences saying what ``auto`` chose
    and why."""
    amp, precision_note = choose_cpu_precision(step, workload=workload)
    if amp is None:
        choice = choose_cpu_linear(model, lambda: step(None), workload=workload)
        gemm, gemm_note = choice.backend, f"GEMM auto -> {choice.backend}: {choice.reason}"
    else:
        gemm, gemm_note = "torch", "GEMM torch: the oneDNN fp32 path does not apply under bf16 autocast"
    with cpu_linear_backend("torch", model):
        pass  # leave the probed model with plain linears; arms apply their own library per call
    forced: list[Arm] = [(f"masklab GEMM {g} fp32 (forced)", g, None) for g in ("onednn", "torch") if g == "torch"
                         or _onednn_available()]  # fmt: skip
    if cpu_has_native_bf16():
        forced.append(("masklab bf16 autocast (forced)", "torch", torch.bfloat16))
    # The default is one of the forced settings: time that setting once (as "default") rather than twice, so the
    # table cannot show a gap between two runs of the very same code (which would only measure noise/position).
    same = [arm for arm in forced if arm[1:] == (gemm, amp)]
    label = f"masklab default (auto: {gemm}, {'bf16' if amp else 'fp32'})"
    if same:
        label += f" = {same[0][0].removeprefix('masklab ')}"
    arms: list[Arm] = [(label, gemm, amp)] + [arm for arm in forced if arm[1:] != (gemm, amp)]
    return arms, [f"CPU: {cpu_model_name()}", precision_note, gemm_note]


def rotated(items: list, i: int) -> list:
    """``items`` rotated by ``i`` places: round ``i`` of an interleaved benchmark starts with a different arm, so no
    arm always runs right after the same neighbour (position effects of caches and allocator state)."""
    k = i % len(items) if items else 0
    return items[k:] + items[:k]


def run_arm(model: torch.nn.Module, arm: Arm, fn: Callable[[], float]) -> float:
    """``fn()`` with ``model``'s linears on the arm's GEMM library and under its autocast; returns fn's value."""
    _, gemm, amp = arm
    autocast = torch.autocast("cpu", dtype=amp) if amp is not None else contextlib.nullcontext()
    with cpu_linear_backend(gemm, model), autocast:  # type: ignore[arg-type]
        return fn()
