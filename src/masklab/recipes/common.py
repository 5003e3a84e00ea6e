"""What every training recipe shares: :class:`TrainOptions` (budget, optimiser, engine), turning them into a
:class:`~masklab.train.TrainConfig`, and :func:`train_run` (lock the run, check a resume, record the
arguments and sidecars, fit, draw ``loss.png``)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from masklab.core.contract import TrainData
from masklab.train import FitResult, TrainConfig, fit
from masklab.train.run import RESUME_OVERRIDES, Run

# --minutes: steps are calibrated on this machine (masklab.train.budget.calibrate_steps: 0.9x the steps that fit,
# 10% headroom) and TrainConfig.max_seconds stays as a hard stop. Same factor for every model kind.


@dataclass(frozen=True)
class TrainOptions:
    """How long and how to train; ``None`` = the recipe's default for its model kind.

    Give at most one of ``steps``, ``epochs`` (passes over the training data) and ``minutes`` (wall clock:
    steps are calibrated on this machine, with the time as a hard stop).
    """

    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    min_lr: float | None = None
    warmup: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    seed: int | None = None
    device: str | None = None
    log_every: int | None = None
    ckpt_every: int | None = None
    grad_accum: int | None = None
    precision: str | None = None
    compile: bool | None = None
    fsdp: bool | None = None
    grad_checkpointing: bool | None = None
    workers: int | None = None  # DataLoader worker processes (fit's batches; also a text --data's prepare)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**dict(values or {}))

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def with_defaults(self, **defaults: Any) -> TrainOptions:
        """These options, with ``defaults`` filling the ones left ``None``."""
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    @property
    def seed_or_0(self) -> int:
        return 0 if self.seed is None else self.seed


def _check_budget(options: TrainOptions) -> None:
    chosen = [name for name in ("steps", "epochs", "minutes") if getattr(options, name) is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one of --steps, --epochs, --minutes (got {', '.join('--' + c for c in chosen)})")
    for name in chosen:
        if not getattr(options, name) > 0:
            raise ValueError(f"--{name} must be > 0, got {getattr(options, name)}")


def train_config(
    options: TrainOptions,
    model: nn.Module | None,
    data: TrainData | None,
    *,
    default_steps: int | Callable[[int], int],
    warmup: Callable[[int], int] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The :class:`TrainConfig` that ``options`` describe (``options`` already carry the kind's defaults).

    ``default_steps`` is used when no budget is given (a function of the batch size, or a number); ``warmup``
    derives the warmup from the final step count when ``options.warmup`` is None. ``model`` and ``data`` are
    needed to time steps for ``minutes`` and to count epochs. Gradient checkpointing is switched on in
    every module of ``model`` that supports it when asked.
    """
    from masklab.train.budget import calibrate_steps

    _check_budget(options)
    if options.grad_checkpointing and model is not None:
        for module in model.modules():
            switch = getattr(module, "set_grad_checkpointing", None)
            if callable(switch):
                switch(True)
    o = options
    batch = o.batch_size if o.batch_size is not None else 64
    fields: dict[str, Any] = dict(
        batch_size=batch, lr=o.lr, min_lr=o.min_lr, weight_decay=o.weight_decay, grad_clip=o.grad_clip,
        log_every=o.log_every, ckpt_every=o.ckpt_every, seed=o.seed, device=o.device, grad_accum=o.grad_accum,
        precision=o.precision, compile=o.compile, fsdp=o.fsdp, workers=o.workers,
    )  # fmt: skip
    fields = {k: v for k, v in fields.items() if v is not None}  # None: TrainConfig's default
    fields.update(overrides)
    if o.steps is not None:
        steps = o.steps
    elif o.epochs is not None:
        steps = max(1, math.ceil(o.epochs * len(data) / fields["batch_size"]))  # type: ignore[arg-type]
    else:
        steps = default_steps(fields["batch_size"]) if callable(default_steps) else default_steps
    cfg = TrainConfig(steps=steps, **fields)
    if o.minutes is not None:
        seconds = o.minutes * 60
        steps = calibrate_steps(model, data, cfg, seconds)  # type: ignore[arg-type]
        print(f"masklab: --minutes {o.minutes:g} -> {steps} steps (timed on this machine)")
        # max_seconds stays as a hard stop in case the machine slows down after calibration.
        cfg = dataclasses.replace(cfg, steps=steps, max_seconds=seconds)
    if o.warmup is not None:
        cfg = dataclasses.replace(cfg, warmup_steps=o.warmup)
        if cfg.warmup_steps > cfg.steps // 2 and o.minutes is not None:
            print(f"masklab: warning: --warmup {cfg.warmup_steps} is over half of the {cfg.steps} steps that fit")
    elif warmup is not None:
        cfg = dataclasses.replace(cfg, warmup_steps=warmup(cfg.steps))
    return cfg


def fit_run(run: Run, model: nn.Module, data: TrainData, cfg: TrainConfig, *, model_config: dict,
            resume: bool = False, quiet: bool = False) -> FitResult:  # fmt: skip
    """:func:`masklab.train.fit` into ``run``, then ``RUN/loss.png`` (rank 0 only; a missing matplotlib is a
    note, not an error). ``quiet``: the training loop's stderr (bar, log lines, warnings) is dropped (``--quiet``)."""
    from masklab.viz.curves import write_run_loss_plot

    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        result = fit(model, data, cfg, run.path, model_config=model_config, resume=resume)
    if os.environ.get("RANK", "0") == "0":
        note = write_run_loss_plot(result.out_dir)
        if note:
            print(note, file=sys.stderr)
    return result


def train_run(
    run: Run,
    model: nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    *,
    model_config: dict,
    recipe: str,
    arguments: Mapping[str, Any],
    sidecars: Mapping[str, Mapping[str, Any]] = {},
    resume: bool = False,
    ignore: tuple[str, ...] = (),
    before_fit: Callable[[], None] | None = None,
) -> FitResult:
    """Train ``model`` into ``run`` holding its lock: a fresh run refuses a directory that holds one; a resume
    must match the recorded config and sidecars (each differing key named, ``config.json`` left untouched;
    a longer ``steps`` is allowed). Then the arguments and sidecars are recorded, ``before_fit`` runs (e.g. to
    save a tokenizer) and :func:`fit_run` trains."""
    with run.lock():
        if resume:
            config = {"kind": model_config["kind"], "model": model_config, "train": dataclasses.asdict(cfg)}
            run.check_resume(config, sidecars, allow=RESUME_OVERRIDES, ignore=ignore)
        else:
            run.check_fresh()
        if os.environ.get("RANK", "0") == "0":
            run.record_arguments(recipe, arguments)
            for name, values in sidecars.items():
                run.write_sidecar(name, values)
        if before_fit is not None:
            before_fit()
        return fit_run(run, model, data, cfg, model_config=model_config, resume=resume)
