"""Tabular masked autoencoder (TableMAE, ReMasker-style) on CSV / Parquet / built-in tables.

``masklab pretrain table --data FILE|builtin:NAME --out RUN`` trains on every row (missing cells included:
they are simply hidden) and writes the run directory of :func:`masklab.train.fit` plus ``table.json``: where
the data came from, the columns kept out of the features (``--exclude``, the label) and the rows used.
``masklab impute RUN`` and ``masklab score RUN`` read it. The default data is the embedded ODDS Shuttle
table (river), whose ``anomaly`` label is kept out of the features.

Only the standard library is imported at module level; torch, pandas and the model load in the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from masklab.apps import fit_run, read_run_info

DEFAULT_DATA = "builtin:shuttle"
TABLE_FILE = "table.json"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    from masklab.commands._train_args import add_train_args

    parser.add_argument(
        "--data", default=DEFAULT_DATA, help=f"CSV / Parquet file or builtin:NAME (default {DEFAULT_DATA})"
    )
    parser.add_argument("--preset", default="table-small", help="table-tiny | table-small (default table-small)")
    parser.add_argument("--categorical", type=_names, default=(), metavar="COL,...", help="force categorical columns")
    parser.add_argument("--numeric", type=_names, default=(), metavar="COL,...", help="force numeric columns")
    parser.add_argument("--exclude", type=_names, default=(), metavar="COL,...",
                        help="columns that are not features (ids, leaks); kept out of training")  # fmt: skip
    parser.add_argument("--label", default=None, metavar="COL",
                        help="a label column kept aside for evaluation (built-ins have their own)")  # fmt: skip
    parser.add_argument("--max-rows", type=int, default=None,
                        help="train on a seeded random subset of this many rows (default: all)")  # fmt: skip
    parser.add_argument("--mask-ratio", type=float, default=0.5, help="share of observed cells hidden (default 0.5)")
    parser.add_argument("--mask-ratio-jitter", type=float, default=0.25,
                        help="per-row share: mask-ratio ± this (default 0.25; 0 = ReMasker's fixed share)")  # fmt: skip
    parser.add_argument("--dropout", type=float, default=0.0)
    add_train_args(parser, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=None, log_every=50, ckpt_every=500)


def read_table_info(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/table.json`` (``{}`` for a run trained without the CLI)."""
    return read_run_info(run_dir, TABLE_FILE)


def pretrain(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from masklab.commands._train_args import train_config
    from masklab.core.io import atomic_write_json
    from masklab.data.tables import TableTrainData, load_table
    from masklab.estimators import auto_steps
    from masklab.models.table import TableMAE, TableMAEConfig
    from masklab.tokenizers.table import encode_frame, infer_schema

    table = load_table(args.data, exclude=args.exclude, label=args.label)
    frame = table.frame
    if args.max_rows is not None:
        if args.max_rows < 1:
            raise ValueError(f"--max-rows must be >= 1, got {args.max_rows}")
        if args.max_rows < len(frame):
            frame = frame.sample(n=args.max_rows, random_state=args.seed).sort_index()
    schema = infer_schema(frame, categorical=args.categorical, numeric=args.numeric)
    encoded = encode_frame(frame, schema)
    config = TableMAEConfig.preset(
        args.preset, schema, mask_ratio=args.mask_ratio, mask_ratio_jitter=args.mask_ratio_jitter, dropout=args.dropout
    )
    torch.manual_seed(args.seed)
    model = TableMAE(config)
    data = TableTrainData(encoded)
    batch = min(args.batch_size, len(data))
    steps = auto_steps(len(data), batch)
    cfg = train_config(args, model, data, default_steps=steps, batch_size=batch, warmup_steps=args.warmup or 0)
    if args.warmup is None:  # default: 5% of however many steps the budget gave
        cfg = dataclasses.replace(cfg, warmup_steps=cfg.steps // 20)
    kinds = {k: sum(c.kind == k for c in schema.columns) for k in ("numeric", "categorical")}
    print(
        f"masklab: {table.name}: {len(frame)} rows x {len(schema.columns)} columns "
        f"({kinds['numeric']} numeric, {kinds['categorical']} categorical), "
        f"{int(encoded.missing.sum())} missing cells; label {table.label_name or 'none'}; "
        f"excluded {list(args.exclude) or 'none'}; {cfg.steps} steps of {cfg.batch_size}"
    )
    result = fit_run(model, data, cfg, args.out, model_config=model.model_config(), resume=args.resume)
    atomic_write_json(
        Path(args.out) / TABLE_FILE,
        {
            "data": args.data,
            "exclude": list(args.exclude),
            "label": table.label_name,
            "rows": len(table.frame),
            "rows_used": len(frame),
        },
    )
    loss = result.last_metrics.get("loss", float("nan"))
    print(f"masklab: wrote {result.out_dir} (step {result.step}, loss {loss:.4f})")
    return 0


def inference_table(run_dir: str | Path, source: str, *, exclude: tuple[str, ...] = (), label: str | None = None):
    """The input of ``impute`` / ``score`` as a :class:`masklab.data.tables.Table`, checked against the run.

    ``source`` is a file or ``builtin:NAME``. Columns that training kept out of the features (its
    ``--exclude`` and label, from ``table.json``) are set aside again when present; a column the model does
    not know is an error naming it (set it aside with ``--exclude``); so is a training column that is absent.
    """
    from masklab.data.tables import load_table, read_table_file, split_columns
    from masklab.train.checkpoint import read_run_config

    names = [c["name"] for c in read_run_config(run_dir)["model"]["schema"]["columns"]]
    info = read_table_info(run_dir)
    if source.startswith("builtin:"):
        table = load_table(source, exclude=exclude, label=label)
    else:
        frame = read_table_file(source)
        columns = [str(c) for c in frame.columns]
        if label is None and info.get("label") in columns:
            label = info["label"]
        trained_out = [c for c in info.get("exclude", []) if c in columns and c not in exclude]
        table = split_columns(frame, exclude=(*exclude, *trained_out), label=label)
        table = type(table)(table.frame, str(source), table.labels)
    unknown = [c for c in table.frame.columns if c not in names]
    if unknown:
        raise ValueError(
            f"{source}: unknown column(s) {unknown}; the model was trained on {names} "
            "(pass --exclude COL,... for columns that are not features)"
        )
    absent = [n for n in names if n not in table.frame.columns]
    if absent:
        raise ValueError(f"{source}: column(s) {absent} the model was trained on are missing")
    return table
