"""``masklab pretrain series``: arguments of :func:`masklab.recipes.series_tasks.pretrain_series`."""

from __future__ import annotations

import argparse

from masklab.cli._args import add_train_args, pretrain_call

FIELDS = ("data", "preset", "mask_kind", "mask_ratio", "patch_len", "max_length", "task", "horizon", "label")


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.add_argument("--data", help=".npy/.npz/.csv/.parquet file or builtin:NAME (default builtin:japanese-vowels)")
    parser.add_argument("--label", metavar="COL",
                        help="long-format .csv/.parquet: the column holding each series' class, kept out of the "
                        "channels (default: none; every column but id and time is a channel)")  # fmt: skip
    parser.add_argument("--preset", help="series-tiny | series-small (default series-small)")
    parser.add_argument("--mask-kind", choices=("random", "tail", "mixed"),
                        help="random patches (PatchTST), the tail (forecasting), or either per series (default "
                        "mixed; random with --task classify, tail with --task forecast)")  # fmt: skip
    parser.add_argument("--mask-ratio", type=float, help="share of real patches hidden (default 0.4)")
    parser.add_argument("--patch-len", type=int,
                        help="steps per patch = stride (default: ~8 patches per median series, 2..16)")  # fmt: skip
    parser.add_argument("--task", choices=("general", "classify", "forecast"),
                        help="general: one model for probe, forecast and impute; classify / forecast: the encoder "
                        "settings validated for that use (docs/benchmarks.md, series) (default general)")  # fmt: skip
    parser.add_argument("--horizon", type=int,
                        help="with --task forecast: the steps to forecast (default: none; required there)")  # fmt: skip
    parser.add_argument("--max-length", type=int,
                        help="train on random crops of this many steps (default: whole series)")  # fmt: skip
    add_train_args(parser, steps=1000, batch_size=64, lr=1e-3, weight_decay=0.05, warmup="5%% of the steps",
                   log_every=20, ckpt_every=500)  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from masklab.recipes.series_tasks import pretrain_series

    pretrain_call(pretrain_series, args, FIELDS)
    return 0
