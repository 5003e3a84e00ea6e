"""Training arguments shared by every ``masklab pretrain <kind>`` (and fine-tuning) command."""

from __future__ import annotations

import argparse


def add_train_args(
    parser: argparse.ArgumentParser,
    *,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.05,
    warmup: int = 0,
    log_every: int = 10,
    ckpt_every: int = 200,
) -> None:
    """Budget, optimiser, precision and run-directory options with per-model defaults."""
    budget = parser.add_argument_group("budget (pick one; --minutes calibrates steps on this machine)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps")
    budget.add_argument("--epochs", type=float, default=None, help="passes over the training data")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, default=batch_size, help=f"global batch (default {batch_size})")
    opt.add_argument("--lr", type=float, default=lr, help=f"peak AdamW learning rate (default {lr:g})")
    opt.add_argument("--min-lr", type=float, default=0.0, help="end of the cosine schedule")
    opt.add_argument("--warmup", type=int, default=warmup, help="linear warmup steps")
    opt.add_argument("--weight-decay", type=float, default=weight_decay)
    opt.add_argument("--grad-clip", type=float, default=1.0)
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="run directory to write (or continue with --resume)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--log-every", type=int, default=log_every)
    run.add_argument("--ckpt-every", type=int, default=ckpt_every)
    add_engine_args(parser)


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """How the step runs (not what it computes): accumulation, precision, compile, FSDP, checkpointing."""
    engine = parser.add_argument_group("engine")
    engine.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    engine.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="auto = bf16 autocast on CUDA, fp32 on CPU; fp16 adds a GradScaler")  # fmt: skip
    engine.add_argument("--compile", action="store_true", help="torch.compile the training step")
    engine.add_argument("--fsdp", action="store_true",
                        help="under torchrun: shard the model (FSDP2) instead of DDP")  # fmt: skip
    engine.add_argument("--grad-checkpointing", action="store_true", help="recompute activations (saves memory)")
    engine.add_argument("--workers", type=int, default=None,
                        help="processes that build batches ahead of the step (DataLoader workers; results do not "
                        "depend on it) and tokenise a text --data on first use (default: 0 / all cores)")  # fmt: skip


def engine_fields(args: argparse.Namespace, model) -> dict:
    """The :class:`~masklab.train.TrainConfig` fields of :func:`add_engine_args`; switches on gradient
    checkpointing in every module of ``model`` that supports it when asked."""
    if getattr(args, "grad_checkpointing", False):
        for module in model.modules():
            if hasattr(module, "set_grad_checkpointing"):
                module.set_grad_checkpointing(True)
    return {"grad_accum": args.grad_accum, "precision": args.precision, "compile": args.compile,
            "fsdp": args.fsdp, "workers": getattr(args, "workers", None) or 0}  # fmt: skip


def train_config(args: argparse.Namespace, model, data, *, default_steps: int, **overrides):
    """The :class:`~masklab.train.TrainConfig` the arguments describe; resolves --steps/--epochs/--minutes.

    ``model`` and ``data`` are needed only to time steps for ``--minutes``; ``overrides`` replace fields.
    """
    import math

    from masklab.train import TrainConfig
    from masklab.train.budget import calibrate_steps

    chosen = [name for name in ("steps", "epochs", "minutes") if getattr(args, name, None) is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one of --steps, --epochs, --minutes (got {', '.join('--' + c for c in chosen)})")
    for name in chosen:
        if not getattr(args, name) > 0:
            raise ValueError(f"--{name} must be > 0, got {getattr(args, name)}")
    fields = dict(
        steps=default_steps, batch_size=args.batch_size, lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip, log_every=args.log_every,
        ckpt_every=args.ckpt_every, seed=args.seed, device=args.device, **engine_fields(args, model),
    )  # fmt: skip
    fields.update(overrides)
    if args.steps is not None:
        fields["steps"] = args.steps
    elif args.epochs is not None:
        fields["steps"] = max(1, math.ceil(args.epochs * len(data) / args.batch_size))
    cfg = TrainConfig(**fields)
    if args.minutes is not None:
        seconds = args.minutes * 60
        steps = calibrate_steps(model, data, cfg, seconds)
        print(f"masklab: --minutes {args.minutes:g} -> {steps} steps (timed on this machine)")
        # max_seconds stays as a hard stop in case the machine slows down after calibration.
        if cfg.warmup_steps > steps // 2:
            print(f"masklab: warning: --warmup {cfg.warmup_steps} is over half of the {steps} steps that fit")
        cfg = TrainConfig(**{**fields, "steps": steps, "max_seconds": seconds})
    return cfg
