"""``masklab embed|probe|finetune RUN ...``: dispatched on the run's model kind (:mod:`masklab.recipes.downstream`)."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_run_data_args


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    add_run_data_args(parser, name)
    parser.set_defaults(func={"embed": _embed, "probe": _probe, "finetune": _finetune}[name])


def _embed(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from masklab.core.io import atomic_write_bytes
    from masklab.recipes.downstream import embed

    features = embed(args.run, data=args.data, batch_size=args.batch_size, device=args.device)  # (N, D)
    buffer = io.BytesIO()
    np.save(buffer, features)
    path = atomic_write_bytes(args.output, buffer.getvalue())
    print(f"masklab: wrote {features.shape[0]} x {features.shape[1]} features (no masking) to {path}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from masklab.eval.probe import format_probe_table
    from masklab.recipes.downstream import probe

    rows = probe(args.run, data=args.data, max_examples=args.max_examples, seed=args.seed,
                 batch_size=args.batch_size, device=args.device)  # fmt: skip
    print(format_probe_table(rows))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from masklab.recipes.downstream import finetune

    finetune(args.run, data=args.data, task=args.task, steps=args.steps, epochs=args.epochs, lr=args.lr,
             batch_size=args.batch_size, augment=args.augment, out=args.out, seed=args.seed,
             device=args.device)  # fmt: skip
    return 0
