"""``masklab pretrain table``: arguments of :func:`masklab.recipes.table.pretrain_table`."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_train_args, names, pretrain_call

FIELDS = ("data", "preset", "categorical", "numeric", "exclude", "label", "max_rows", "mask_ratio",
          "mask_ratio_jitter", "dropout", "neighbors")  # fmt: skip


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("--data", help="CSV / Parquet file or builtin:NAME (default builtin:shuttle)")
    parser.add_argument("--preset", help="table-tiny | table-small (default table-small)")
    parser.add_argument("--categorical", type=names, metavar="COL,...",
                        help="force categorical columns (default: inferred)")  # fmt: skip
    parser.add_argument("--numeric", type=names, metavar="COL,...", help="force numeric columns (default: inferred)")
    parser.add_argument("--exclude", type=names, metavar="COL,...",
                        help="columns that are not features (ids, leaks), kept out of training "
                        "(default: none)")  # fmt: skip
    parser.add_argument("--label", metavar="COL",
                        help="a label column kept aside for evaluation (default: none; built-ins have "
                        "their own)")  # fmt: skip
    parser.add_argument("--max-rows", type=int,
                        help="train on a seeded random subset of this many rows (default: all)")  # fmt: skip
    parser.add_argument("--mask-ratio", type=float, help="share of observed cells hidden (default 0.5)")
    parser.add_argument("--mask-ratio-jitter", type=float,
                        help="per-row share: mask-ratio ± this (default 0.25; 0 = ReMasker's fixed share)")  # fmt: skip
    parser.add_argument("--dropout", type=float, help="dropout probability in the model (default 0)")
    parser.add_argument("--neighbors", type=int, metavar="K",
                        help="anomaly scores ('masklab score RUN') add the distance to the K-th nearest "
                        "training row; the run keeps its rows (at most 10,000) in scoring.safetensors "
                        "(default 5; 0 = off)")  # fmt: skip
    add_train_args(parser, steps="400 epochs, clipped to 1000..4000", batch_size=64, lr=1e-3, weight_decay=0.05,
                   warmup="5%% of the steps", log_every=50, ckpt_every=500)  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.table import pretrain_table

    pretrain_call(pretrain_table, args, FIELDS)
    return 0
