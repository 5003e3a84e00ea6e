"""What ``fit`` runs a CPU training step with, chosen by measurement on this machine: bf16 autocast or fp32
(``precision="auto"``), the fp32 GEMM library (:mod:`masklab.nn.cpu_linear_probe`) and, in fp32, the attention
kernel (:mod:`masklab.nn.cpu_attention_probe`).

bf16 autocast pays on CPUs with native bf16 matrix units (AMX-BF16, AVX512-BF16) at shapes large enough to
amortise the casts, and costs elsewhere (measured: 1.44x faster on an mae-vit-t step, 0.86x on mae-small-28, on
the same Xeon). So ``auto`` on CPU times one training step of the model's first batch in fp32 and in bf16,
interleaved, and takes bf16 only if it is faster by more than ``MARGIN``; the verdict is cached per CPU model,
torch version, threads and workload (:mod:`masklab.core.probe`). Each choice comes with a sentence saying why.

A resumed run does not choose again: the choices differ in the last bits (another GEMM library or attention kernel
sums in another order), and a probe can decide otherwise on another machine, another thread count or with a
cleared cache. ``fit`` records them in every checkpoint (:func:`cpu_kernels`) and a resume on CPU reapplies them
(:func:`reapply_cpu_kernels`), so it continues bit-identically. ``MASKLAB_CPU_LINEAR`` / ``MASKLAB_CPU_ATTENTION``
set to another choice still win, with a warning that the resume will not be bit-identical.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from masklab.core.contract import Trainable
from masklab.core.probe import choose_by_timing, cpu_model_name
from masklab.nn.attention import MaskedSelfAttention, use_cpu_attention
from masklab.nn.cpu_attention_probe import ENV_VAR as ATTENTION_ENV_VAR
from masklab.nn.cpu_attention_probe import choose_cpu_attention, cpu_attention_setting
from masklab.nn.cpu_linear import ENV_VAR as LINEAR_ENV_VAR
from masklab.nn.cpu_linear import cpu_linear_setting, get_cpu_linear_backend, use_cpu_linear
from masklab.nn.cpu_linear_probe import choose_cpu_linear, linear_shapes

PROBE_KIND = "cpu_precision"
MARGIN = 0.05
KERNELS_KEY = "cpu_kernels"  # the checkpoint metadata key of :func:`cpu_kernels`
_PRECISIONS = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an explicit ``precision``, or for ``auto`` off CPU; None = plain fp32.
    (``auto`` on CPU is :func:`choose_cpu_precision`'s measurement; without one it is fp32.)"""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        if precision == "bf16":
            raise ValueError(f"precision='bf16' but {torch.cuda.get_device_name(device)} has no bf16 support")
        return None
    return torch.bfloat16


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 GEMMs natively here (AVX512-BF16 / AMX); without them bf16 is emulated."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def choose_cpu_precision(
    step: Callable[[torch.dtype | None], None], *, workload: str
) -> tuple[torch.dtype | None, str]:
    """``(autocast dtype or None, reason)`` for ``precision="auto"`` on CPU; ``step(dtype)`` runs one step."""
    if not cpu_has_native_bf16():
        return None, f"precision auto -> fp32: {cpu_model_name()} has no native bf16 GEMM (AVX512-BF16/AMX)"
    choice = choose_by_timing(
        PROBE_KIND,
        {"fp32": lambda: step(None), "bf16": lambda: step(torch.bfloat16)},
        setting="auto",  # forced precisions never reach here: `precision` is the flag itself
        env_var="precision",
        key={"workload": workload},
        field="precision",
        margin=MARGIN,
    )
    reason = f"precision auto -> {choice.name}: {choice.reason.removeprefix('auto: ')}"
    return (torch.bfloat16 if choice.name == "bf16" else None), reason


def cpu_training_step(model: nn.Module, batch: Any, seed: int = 0) -> Callable[[torch.dtype | None], None]:
    """One forward + backward of ``model.training_loss`` on ``batch`` that leaves no trace: the global RNG is
    forked, a private generator draws the masks and the gradients are cleared afterwards."""

    def step(dtype: torch.dtype | None) -> None:
        if not isinstance(model, Trainable):
            raise TypeError(f"{type(model).__name__} has no training_loss(batch, generator) method")
        autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.random.fork_rng(devices=[]), autocast:
            out = model.training_loss(batch, torch.Generator().manual_seed(seed))
        out.loss.backward()
        model.zero_grad(set_to_none=True)

    return step


def choose_cpu_speedups(
    model: nn.Module, batch: Any, precision: str, *, compiled: bool = False
) -> tuple[torch.dtype | None, list[str]]:
    """Precision and GEMM library for training ``model`` on CPU (applied to ``model``); returns the autocast
    dtype (None = fp32) and one sentence per choice saying what was picked and why.

    The probes time a copy of ``model`` (a model may update itself inside ``training_loss``, e.g. a learned
    masker's own optimizer step), so ``model``'s weights and state are untouched.
    """
    if precision != "auto" and (resolve_precision(precision, torch.device("cpu")) is not None or compiled):
        use_cpu_linear(model, "torch")  # nothing to measure: autocast or compile bypass the oneDNN fp32 path
        why = "torch.compile" if compiled else f"{precision} autocast"
        return resolve_precision(precision, torch.device("cpu")), [
            f"precision {precision} (explicit)",
            f"GEMM torch: the oneDNN fp32 path does not apply under {why}",
        ]
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        return _probe(model, copy.deepcopy(model), batch, precision, compiled)
    finally:  # a copy's training_loss may still reach the original (a patched-in closure): undo any trace
        model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)


def _probe(
    model: nn.Module, probe: nn.Module, batch: Any, precision: str, compiled: bool
) -> tuple[torch.dtype | None, list[str]]:
    step = cpu_training_step(probe, batch)
    try:
        step(None)  # a model that cannot run a step is the loop's to report, with its own message
    except Exception as err:
        use_cpu_linear(model, "torch")
        return resolve_precision(precision, torch.device("cpu")), [
            f"precision/GEMM probes skipped ({type(err).__name__} in a trial step): fp32 unless asked, GEMM torch"
        ]
    shape = [list(t.shape) for t in _tensors(batch)]
    workload = f"train {type(model).__name__} batch={shape}"
    if precision == "auto":
        key = f"{workload} linears={linear_shapes(model)}"
        amp_dtype, precision_note = choose_cpu_precision(step, workload=key)
    else:
        amp_dtype = resolve_precision(precision, torch.device("cpu"))
        precision_note = f"precision {precision} (explicit)"
    if amp_dtype is not None or compiled:
        use_cpu_linear(model, "torch")
        why = "bf16 autocast" if amp_dtype is not None else "torch.compile"
        return amp_dtype, [precision_note, f"GEMM torch: the oneDNN fp32 path does not apply under {why}"]
    choice = choose_cpu_linear(probe, lambda: step(None), workload=workload)
    use_cpu_linear(model, choice.backend)
    notes = [precision_note, f"GEMM {choice.backend}: {choice.reason}"]
    attention = choose_cpu_attention(probe, lambda: step(None), workload=f"{workload} gemm={choice.backend}")
    if attention is not None:
        use_cpu_attention(model, attention.kernel)
        notes.append(f"attention {attention.kernel}: {attention.reason}")
    return None, notes


def cpu_kernels(model: nn.Module, amp_dtype: torch.dtype | None) -> str:
    """What ``model`` trains with on CPU now, as JSON: ``{"precision", "gemm", "attention"}`` (attention None for a
    model without :class:`~masklab.nn.attention.MaskedSelfAttention`); recorded in checkpoints."""
    attention = next((m.cpu_kernel for m in model.modules() if isinstance(m, MaskedSelfAttention)), None)
    return json.dumps({"precision": _PRECISIONS[amp_dtype], "gemm": get_cpu_linear_backend(), "attention": attention})


def reapply_cpu_kernels(
    model: nn.Module, recorded: str, precision: str
) -> tuple[torch.dtype | None, list[str], list[str]]:
    """Apply to ``model`` the CPU choices a checkpoint recorded (``recorded``: :func:`cpu_kernels`), instead of
    probing again; returns the autocast dtype, one note per choice and warnings (a forced env var naming another
    choice wins; a choice this machine cannot make falls back): the resume is then not bit-identical."""
    try:
        saved = json.loads(recorded)
        amp_dtype = {v: k for k, v in _PRECISIONS.items()}[saved["precision"]] if precision == "auto" else None
        gemm, attention = str(saved["gemm"]), saved["attention"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"the checkpoint's {KERNELS_KEY} metadata is not valid ({recorded!r})") from err
    if precision != "auto":
        amp_dtype = resolve_precision(precision, torch.device("cpu"))
    notes = [f"precision {_PRECISIONS[amp_dtype]}: as the checkpoint recorded" if precision == "auto"
             else f"precision {precision} (explicit)"]  # fmt: skip
    warnings: list[str] = []
    different = "the resumed run will not be bit-identical to an uninterrupted one"
    how = "as the checkpoint recorded"
    if (forced_gemm := cpu_linear_setting()) not in ("auto", gemm):
        warnings.append(f"{LINEAR_ENV_VAR}={forced_gemm} replaces the GEMM {gemm} this run trained with: {different}")
        gemm, how = forced_gemm, f"{LINEAR_ENV_VAR}={forced_gemm} (forced)"
    try:
        use_cpu_linear(model, gemm)  # type: ignore[arg-type]  # a str from JSON: use_cpu_linear checks it
    except ValueError as err:  # oneDNN recorded, a PyTorch without it here
        warnings.append(f"GEMM torch, not {gemm} as this run trained with ({err}): {different}")
        use_cpu_linear(model, "torch")
        gemm, how = "torch", "the only one here"
    notes.append(f"GEMM {gemm}: {how}")
    if attention is not None and any(isinstance(m, MaskedSelfAttention) for m in model.modules()):
        kernel, how = str(attention), "as the checkpoint recorded"
        if (forced_kernel := cpu_attention_setting()) not in ("auto", kernel):
            warnings.append(f"{ATTENTION_ENV_VAR}={forced_kernel} replaces the attention {kernel} this run trained "
                            f"with: {different}")  # fmt: skip
            kernel, how = forced_kernel, f"{ATTENTION_ENV_VAR}={forced_kernel} (forced)"
        use_cpu_attention(model, kernel)  # type: ignore[arg-type]  # checked there
        notes.append(f"attention {kernel}: {how}")
    return amp_dtype, notes, warnings


def _tensors(batch: Any) -> list[torch.Tensor]:
    if torch.is_tensor(batch):
        return [batch]
    if isinstance(batch, dict):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, (list, tuple)):
        return [t for v in batch for t in _tensors(v)]
    if hasattr(batch, "__dataclass_fields__"):
        return [t for name in batch.__dataclass_fields__ for t in _tensors(getattr(batch, name))]
    return []
