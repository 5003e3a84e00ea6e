"""The one training loop every masklab model reuses (MAE, BERT MLM, GPT, tabular MAE).

A model plugs in by being an ``nn.Module`` with ``training_loss(batch, generator) -> LossOutput``; data
plugs in with ``__len__`` and ``get_batch(indices, generator)``. :func:`fit` owns everything else: the
sampler, the device, bf16 autocast, gradient accumulation and clipping, AdamW with a warmup + cosine
learning rate, metrics, progress and atomic checkpoints that resume bit-identically.

Randomness (a resumed run replays the uninterrupted one exactly on CPU, on any number of ranks):
  * the sampler: epoch ``e`` visits ``torch.randperm(n, seed * 1_000_003 + e)`` in order, a global batch
    per step (its position is checkpointed);
  * the loop generator: ONE CPU ``torch.Generator`` handed to ``get_batch`` and ``training_loss`` for
    augmentation and masking noise (draw on CPU, then move to the device);
  * torch's global RNGs (dropout).
Both generators are re-seeded from ``(seed, step, micro-batch index)`` before every micro-batch, which is
what makes a run independent of how its micro-batches are spread over ranks (see
:mod:`masklab.train.distributed`) and of ``cfg.workers`` (batches built in DataLoader worker processes, see
:mod:`masklab.train.batches`), but not of their number: a resume keeps ranks x grad_accum. On CPU a resume also
keeps the kernels the run trained with (precision, GEMM library, attention kernel; recorded in the checkpoint,
see :mod:`masklab.train.cpu_probe`) instead of probing again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from masklab import __version__
from masklab.core.contract import LossOutput, TrainData
from masklab.core.device import resolve_device
from masklab.core.io import atomic_write_json, remove_stale_temp_files
from masklab.nn.attention import use_cpu_attention
from masklab.nn.cpu_linear import use_cpu_linear
from masklab.train import checkpoint as ckpt
from masklab.train import cpu_probe, distributed
from masklab.train.batches import BatchSource, EpochSampler, micro_seed, seed_global_rng
from masklab.train.batches import derived_seed as _derived_seed
from masklab.train.config import TrainConfig
from masklab.train.cpu_probe import resolve_precision
from masklab.train.interrupt import GracefulStop, held_step, no_resume, saved_note
from masklab.train.optim import build_optimizer, lr_at
from masklab.train.progress import MetricsLog, MetricWindow, Reporter, read_metrics


@dataclass(frozen=True)
class FitResult:
    """Where a finished :func:`fit` left things."""

    out_dir: Path
    step: int  # optimizer steps reached (cfg.steps, or fewer when max_seconds ran out)
    last_metrics: dict[str, Any]  # the last metrics.jsonl record
    checkpoint_path: Path
    metrics_path: Path


# --------------------------------------------------------------------------------------- small helpers
def move_to(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor moved to ``device``, through dicts, lists, tuples (named ones too)
    and dataclasses; anything else is returned unchanged."""
    if torch.is_tensor(batch):
        return batch.to(device)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        moved = {f.name: move_to(getattr(batch, f.name), device) for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **moved)
    if isinstance(batch, Mapping):
        items = {k: move_to(v, device) for k, v in batch.items()}
        rebuild = cast("Callable[[dict[Any, Any]], Mapping[Any, Any]]", type(batch))  # most mapping types take one
        try:
            return items if type(batch) is dict else rebuild(items)
        except TypeError:  # a mapping type that cannot be built from a dict (e.g. defaultdict)
            return items
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch


_RESERVED_METRICS = frozenset({"step", "loss", "lr", "grad_norm", "samples_per_s", "elapsed_s"})


def _schedule_step(step: int, elapsed: float, cfg: TrainConfig) -> int:
    """The step the lr schedule sees: the real one, or the time-equivalent one if the time budget binds."""
    if cfg.max_seconds is None:
        return step
    total = cfg.max_seconds
    if cfg.deadline is not None:  # the time this run has: what it used plus what is left before the deadline
        total = min(total, elapsed + max(cfg.deadline - time.monotonic(), 0.0))
    return min(cfg.steps, max(step, math.ceil(cfg.steps * elapsed / max(total, 1e-9))))


def _optimizer_step(wrapped, source, sampler, generator, optimizer, cfg, step, dist_info, autocast, scaler):
    """One optimizer step; returns this rank's loss, model metrics and grad_norm (device tensors, no sync).

    The global batch ``cfg.batch_size`` is split into ``world * grad_accum`` equal micro-batches; this rank
    takes micro-batches ``rank * grad_accum ... + grad_accum - 1``. Each is seeded by its global index.
    """
    values: dict[str, Any] = {}
    n_micro = dist_info.world * cfg.grad_accum
    micro_size = cfg.batch_size // n_micro
    indices = sampler.next_indices(cfg.batch_size)  # the same global batch on every rank
    for j in range(cfg.grad_accum):
        m = dist_info.rank * cfg.grad_accum + j
        seed_global_rng(_derived_seed(cfg.seed, f"global:{step}:{m}"), _device(wrapped))  # dropout, drop-path
        batch = source.get(indices[m * micro_size : (m + 1) * micro_size], micro_seed(cfg.seed, step, m), generator)
        batch = move_to(batch, _device(wrapped))
        # Gradients are averaged over ranks only on the last micro-batch, as in plain accumulation.
        with distributed.gradient_sync(wrapped, dist_info, enabled=j == cfg.grad_accum - 1):
            with autocast():
                out = wrapped(batch, generator)
            if not isinstance(out, LossOutput):
                raise TypeError(f"training_loss must return LossOutput, got {type(out).__name__}")
            clash = _RESERVED_METRICS.intersection(out.metrics)
            if clash:
                raise ValueError(f"training_loss metrics may not use the loop's names {sorted(clash)}")
            # Dividing each micro-batch loss makes the accumulated gradient that of the full batch's mean loss
            # (DDP then averages over ranks, which completes the mean over all micro-batches).
            scaler.scale(out.loss / cfg.grad_accum).backward()
        for name, value in [("loss", out.loss), *out.metrics.items()]:
            value = value.detach().float() if torch.is_tensor(value) else float(value)
            values[name] = values.get(name, 0.0) + value / cfg.grad_accum
    scaler.unscale_(optimizer)
    # max_norm=inf only measures: the clip coefficient clamps to 1.0, an exact no-op multiply.
    max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
    values["grad_norm"] = distributed.local_value(torch.nn.utils.clip_grad_norm_(wrapped.parameters(), max_norm))
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return values


def _device(wrapped: nn.Module) -> torch.device:
    return next(wrapped.parameters()).device


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`fit`; its message names the step reached and the step the checkpoint holds."""


def _checkpoint_seconds(model: nn.Module) -> float:
    """A generous first guess of one checkpoint write (weights + two AdamW moments, hashed and fsync'ed);
    replaced by 1.5x the measured time after the first one."""
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return 0.25 + 3 * size / 100e6


# ------------------------------------------------------------------------------------------------- fit
def fit(
    model: nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    model_config: dict,
    resume: bool = False,
    resumable: bool = True,
    progress: bool | None = None,
    on_step: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` for ``cfg.steps`` optimizer steps, writing a run directory ``out_dir``.

    ``model_config`` is the JSON-able dict that rebuilds the model (must contain ``"kind"``); it is saved
    in ``config.json`` with ``cfg``. A fresh run refuses an ``out_dir`` that already holds a checkpoint;
    ``resume=True`` continues from it (same model config required) and ends bit-identical to an
    uninterrupted run on CPU. ``progress``: tqdm bar (default: when stderr is a TTY) or plain log lines.
    ``on_step(step, values)`` is called after every optimizer step with that step's loss, lr, grad_norm
    and model metrics as floats (costs a host sync per step on GPU). The model is left in train mode, a plain
    module on every rank (FSDP's shards gathered back, plain linears and SDPA).
    ``resumable=False``: the caller (a command without ``--resume``) cannot continue a run, so messages about
    an existing or interrupted run say to start again instead.
    """
    if not callable(getattr(model, "training_loss", None)):
        raise TypeError(f"{type(model).__name__} has no training_loss(batch, generator) method")
    if not isinstance(model_config, dict) or not isinstance(model_config.get("kind"), str):
        raise ValueError(f"model_config must be a dict with a string 'kind', got {model_config!r}")
    kind = model_config["kind"]
    device = resolve_device(cfg.device)
    dist_info = distributed.setup(device)
    try:
        result = _fit(model, data, cfg, out_dir, model_config, kind, device, dist_info, resume, progress, on_step,
                      resumable)  # fmt: skip
        distributed.wait_for_all(dist_info)  # only on success: a rank that failed must not wait for the others
        return result
    finally:
        use_cpu_linear(model, "torch")  # hand the model back with plain nn.Linear layers and SDPA attention,
        use_cpu_attention(model, "sdpa")  # so it computes as the same model loaded from its checkpoint does
        if dist_info.enabled:
            # DDP's reducer sits in reference cycles: free it now, while the process group is alive, not during
            # interpreter teardown (where a gloo abort at exit has been seen; see masklab.cli.run).
            gc.collect()
        distributed.cleanup(dist_info)


def _fit(model, data, cfg, out_dir, model_config, kind, device, dist_info, resume, progress, on_step,
         resumable) -> FitResult:  # fmt: skip
    main = dist_info.is_main
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    n_micro = dist_info.world * cfg.grad_accum
    if cfg.batch_size % n_micro:
        raise ValueError(
            f"batch_size={cfg.batch_size} must be divisible by world size x grad_accum = {n_micro} "
            f"({dist_info.world} x {cfg.grad_accum})"
        )
    num_examples = len(data)
    if num_examples < cfg.batch_size:
        raise ValueError(
            f"batch_size={cfg.batch_size} is larger than the dataset ({num_examples} examples); "
            "lower batch_size or use more data"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = out / ckpt.CHECKPOINT_NAME, out / ckpt.METRICS_NAME
    if resume and not ckpt_path.is_file():
        raise FileNotFoundError(f"cannot resume: {out} has no {ckpt.CHECKPOINT_NAME} (run with resume=False)")
    if not resume and ckpt_path.exists():
        again = "resume it or pick another out_dir" if resumable else "pick another --out, or delete it to start again"
        raise ValueError(f"{out} already holds a run ({ckpt.CHECKPOINT_NAME}); {again}")
    # The model, and the micro-batches per step (every micro-batch's draws are seeded by its index), must not change.
    meta = ckpt.check_resume(out, kind, model_config, dist_info.world, cfg.grad_accum) if resume else {}
    if main:
        remove_stale_temp_files(out, ckpt.RUN_FILES)

    amp_dtype = resolve_precision(cfg.precision, device)
    model.to(device)
    model.train()
    kernels: dict[str, str] = {}
    if device.type == "cpu":  # bf16 or fp32, oneDNN or torch GEMMs: measured once per machine (train.cpu_probe)
        warns: list[str] = []
        if cpu_probe.KERNELS_KEY in meta:  # a resume computes with the kernels the run trained with
            amp_dtype, notes, warns = cpu_probe.reapply_cpu_kernels(model, meta[cpu_probe.KERNELS_KEY], cfg.precision)
        else:
            batch = data.get_batch(torch.arange(cfg.batch_size // n_micro), torch.Generator().manual_seed(cfg.seed))
            amp_dtype, notes = cpu_probe.choose_cpu_speedups(model, batch, cfg.precision, compiled=cfg.compile)
        for note in notes if main else ():
            print(f"masklab: {note}", file=sys.stderr, flush=True)
        for warning in warns if main else ():
            warnings.warn(warning, stacklevel=1)
        chosen = distributed.broadcast_text(cpu_probe.cpu_kernels(model, amp_dtype), dist_info)
        if not main:  # every rank computes with rank 0's choices, the ones its checkpoint records
            amp_dtype = cpu_probe.reapply_cpu_kernels(model, chosen, cfg.precision)[0]
        kernels = {cpu_probe.KERNELS_KEY: chosen}
    wrapped = distributed.wrap(model, dist_info, device, fsdp=cfg.fsdp)
    optimizer = build_optimizer(model, cfg)  # after wrap: FSDP replaces the parameters with sharded ones
    if cfg.compile:
        wrapped = cast(nn.Module, torch.compile(wrapped))  # an OptimizedModule; the stubs say only Callable
    # fp16 needs loss scaling against underflow; for bf16/fp32 the disabled scaler is a pass-through.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(_derived_seed(cfg.seed, "loop-generator"))
    sampler = EpochSampler(num_examples, cfg.seed)
    window = MetricWindow(device)
    step, elapsed_before = 0, 0.0
    if resume:
        # Under FSDP every rank reads the full checkpoint and keeps its shard.
        model_in, optimizer_in = distributed.state_loaders(wrapped, model, optimizer)
        meta = ckpt.load_training_state(
            ckpt_path, model=model_in, optimizer=optimizer_in, generator=generator, device=device
        )
        try:
            sampler.load_state_dict({"epoch": int(meta["sampler_epoch"]), "cursor": int(meta["sampler_cursor"])})
            window.load_json(meta.get("log_window", '{"steps": 0, "sums": {}}'))
            step, elapsed_before = int(meta["step"]), float(meta.get("elapsed_s", "0"))
        except (KeyError, ValueError) as err:
            raise ckpt.CheckpointError(f"{ckpt_path}: bad loop state in the metadata ({err})") from err
        if step > cfg.steps:
            raise ValueError(f"{ckpt_path} is at step {step}, past the {cfg.steps} steps asked for; resume with "
                             f"more than {step} steps")  # fmt: skip
        if "grad_scaler" in meta:
            scaler.load_state_dict(json.loads(meta["grad_scaler"]))
    if main:
        atomic_write_json(
            out / ckpt.CONFIG_NAME,
            {"masklab_version": __version__, "kind": kind, "model": model_config, "train": cfg.to_dict()},
        )
    metrics = MetricsLog(metrics_path)
    if main and resume:
        metrics.truncate_after(step)
    elif main:
        metrics.reset()

    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    show_bar = sys.stderr.isatty() if progress is None else progress
    reporter = Reporter(bar=show_bar and main, total=cfg.steps, initial=step, quiet=not main)
    start, start_step = time.perf_counter(), step
    last_record: dict[str, Any] = {}
    ckpt_seconds = _checkpoint_seconds(model)
    source = BatchSource(data, cfg.workers, pin_memory=device.type == "cuda", note=lambda: saved_note(ckpt_path))
    source.start(cfg, sampler, step, dist_info.rank, dist_info.world)
    stop = GracefulStop(reporter.message, enabled=not dist_info.enabled)  # Ctrl-C: finish the step, checkpoint
    try:
        stop.install()
        while step < cfg.steps:
            lr = lr_at(_schedule_step(step + 1, elapsed_before + time.perf_counter() - start, cfg), cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)  # layer-wise decay (optim.param_groups)
            values = _optimizer_step(
                wrapped, source, sampler, generator, optimizer, cfg, step, dist_info, autocast, scaler
            )
            step += 1
            window.add_step(values, cfg.batch_size)
            if on_step is not None:
                on_step(step, {"lr": lr, **{k: float(v) for k, v in values.items()}})
            reporter.advance()
            now = time.perf_counter()
            out_of_time = cfg.max_seconds is not None and elapsed_before + now - start >= cfg.max_seconds
            if cfg.deadline is not None:  # stop while the next step and the final checkpoint still fit
                per_step = (now - start) / (step - start_step)
                out_of_time = out_of_time or time.monotonic() + per_step + ckpt_seconds >= cfg.deadline
            last_step = step == cfg.steps or out_of_time or stop.requested
            if dist_info.enabled:  # every rank must agree on stopping, or the others wait forever
                out_of_time = bool(distributed.any_rank(out_of_time, dist_info))
                last_step = step == cfg.steps or out_of_time
            # Ctrl-C between two records: the record is shown, not logged, and its window is checkpointed, so a
            # resumed run logs the numbers of an uninterrupted one (a time budget's stop is the run's result).
            between = stop.requested and not out_of_time and step < cfg.steps and step % cfg.log_every != 0
            if step % cfg.log_every == 0 or last_step:
                means = window.means(dist_info)
                last_record = {
                    "step": step,
                    "loss": means.pop("loss"),
                    "lr": lr,
                    "grad_norm": means.pop("grad_norm"),
                    "samples_per_s": window.samples / max(now - window.t0, 1e-9),
                    "elapsed_s": elapsed_before + now - start,
                    **means,
                }
                if main and not between:
                    metrics.append(last_record)
                eta = (cfg.steps - step) * (now - start) / (step - start_step)
                reporter.log(last_record, eta)
                if not between:
                    window.reset()
                if not math.isfinite(last_record["loss"]):
                    raise FloatingPointError(f"loss became {last_record['loss']} by step {step}; "
                                             f"{saved_note(ckpt_path)} (lower --lr, or check the data)")  # fmt: skip
            if step % cfg.ckpt_every == 0 or last_step:
                if "loss" in window.sums and not torch.isfinite(window.sums["loss"]):
                    raise FloatingPointError(f"loss became non-finite before step {step}; "
                                             f"{saved_note(ckpt_path)} (lower --lr, or check the data)")  # fmt: skip
                loop_state = {
                    "grad_scaler": json.dumps(scaler.state_dict()),
                    "sampler_epoch": str(sampler.epoch),
                    "sampler_cursor": str(sampler.cursor),
                    "log_window": window.state_json(),
                    "elapsed_s": repr(elapsed_before + time.perf_counter() - start),
                    "world_size": str(dist_info.world),
                    "grad_accum": str(cfg.grad_accum),
                    **kernels,
                    **({"stop_reason": "time budget"} if out_of_time else {}),
                }
                # Under FSDP gathering the full state is a collective, so every rank takes part.
                model_out, optimizer_out = distributed.full_state(wrapped, model, optimizer)
                if main:
                    began = time.monotonic()
                    try:
                        ckpt.save_training_state(ckpt_path, model=model_out, optimizer=optimizer_out,
                                                 generator=generator, device=device, step=step,
                                                 extra_metadata=loop_state)  # fmt: skip
                    except OSError as err:  # disk full, permissions: the previous checkpoint is untouched
                        raise OSError(err.errno, f"could not write {ckpt_path} at step {step}: "
                                      f"{err.strerror or err}; {saved_note(ckpt_path)}") from None  # fmt: skip
                    ckpt_seconds = 1.5 * (time.monotonic() - began)
            if stop.requested and step < cfg.steps:  # a press during the last step: the run is complete
                raise KeyboardInterrupt  # after the checkpoint above: it holds this step
            if out_of_time:
                reporter.message(f"masklab: time budget reached: stopped at step {step}")
                break
    except KeyboardInterrupt:
        hint = "" if held_step(ckpt_path) is None else " — resume with --resume" if resumable else no_resume(out)
        raise TrainingInterrupted(f"interrupted at step {step}; {saved_note(ckpt_path)}{hint}") from None
    except RuntimeError:
        if not stop.requested:
            raise
        # After a Ctrl-C, e.g. a DataLoader worker it also reached died: the stop the user asked for, not a bug.
        raise TrainingInterrupted(f"interrupted at step {step}; {saved_note(ckpt_path)}") from None
    finally:
        stop.restore()
        source.close()
        reporter.close()
    if not last_record:  # resumed a run that had already finished
        last_record = (read_metrics(metrics_path) or [{}])[-1]
    distributed.unshard(wrapped)  # FSDP: hand back a whole, plain model on every rank (a collective)
    return FitResult(out, step, last_record, ckpt_path, metrics_path)
