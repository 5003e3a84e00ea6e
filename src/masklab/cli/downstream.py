"""``masklab embed|probe|finetune RUN ...``: dispatched on the run's model kind (:mod:`masklab.recipes.downstream`)."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_run_data_args
from masklab.cli.progress import add_quiet, reporting

SKIP_BAD_HELP = "leave out unreadable input files (and images smaller than one patch), named once; default: an error"


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    add_run_data_args(parser, name)
    parser.add_argument("--skip-bad", action="store_true", help=SKIP_BAD_HELP)
    add_quiet(parser)
    parser.set_defaults(func={"embed": _embed, "probe": _probe, "finetune": _finetune}[name])


def _embed(args: argparse.Namespace) -> int:
    with reporting(args, "embed") as progress:
        from masklab.recipes.downstream import embed
        from masklab.recipes.embedding import check_output, checksum_path, write_embedding

        check_output(args.output, data=args.data)  # before any work
        result = embed(args.run, data=args.data, batch_size=args.batch_size, device=args.device,
                       skip_bad=args.skip_bad, progress=progress)  # fmt: skip
        npy, index = write_embedding(result, args.output)
    rows, dim = result.features.shape
    print(f"masklab: wrote {rows} x {dim} features (no masking) to {npy}; row index (row, source, label) {index}; "
          f"their sha256 {checksum_path(npy)}")  # fmt: skip
    return 0


def _probe(args: argparse.Namespace) -> int:
    with reporting(args, "probe") as progress:
        from masklab.eval.probe import format_probe_table
        from masklab.recipes.downstream import probe

        rows = probe(args.run, data=args.data, max_examples=args.max_examples, seed=args.seed,
                     batch_size=args.batch_size, device=args.device, skip_bad=args.skip_bad,
                     progress=progress)  # fmt: skip
    print(format_probe_table(rows))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    try:
        with reporting(args, "finetune") as progress:
            from masklab.recipes.downstream import finetune

            finetune(args.run, data=args.data, task=args.task, steps=args.steps, epochs=args.epochs, lr=args.lr,
                     batch_size=args.batch_size, augment=args.augment, out=args.out, seed=args.seed,
                     device=args.device, skip_bad=args.skip_bad, progress=progress)  # fmt: skip
    except KeyboardInterrupt as err:
        if str(err):  # stopped while training: the message says where, and what to do
            raise
        from masklab.recipes.finetune_outputs import default_out, stopped_message

        raise KeyboardInterrupt(stopped_message(default_out(args.run, args.out), args.run)) from None
    return 0
