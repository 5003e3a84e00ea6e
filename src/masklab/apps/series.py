"""Masked time-series model (PatchTST) on variable-length series: ``.npy`` / ``.npz`` / long CSV / Parquet.

``masklab pretrain series --data FILE|builtin:NAME --out RUN`` pretrains on the training split of a built-in
(every series of a file) and writes the run directory plus ``series.json`` (where the data came from) and
``reconstruction.png``. ``masklab probe RUN`` / ``finetune RUN`` classify the built-in's test split;
``masklab forecast RUN --horizon H`` and ``masklab impute RUN INPUT`` predict steps. The logic lives in
:mod:`masklab.recipes.series`; this module only parses arguments.
"""

from __future__ import annotations

import argparse

DEFAULT_DATA = "builtin:japanese-vowels"


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    from masklab.commands._train_args import add_train_args

    parser.add_argument("--data", default=DEFAULT_DATA,
                        help=f".npy/.npz/.csv/.parquet file or builtin:NAME (default {DEFAULT_DATA})")  # fmt: skip
    parser.add_argument("--preset", default="series-small", help="series-tiny | series-small (default series-small)")
    parser.add_argument("--mask-kind", choices=("random", "tail", "mixed"), default="mixed",
                        help="random patches (PatchTST), the tail (forecasting), or either per series")  # fmt: skip
    parser.add_argument("--mask-ratio", type=float, default=0.4, help="share of real patches hidden (default 0.4)")
    parser.add_argument("--patch-len", type=int, default=None,
                        help="steps per patch = stride (default: ~8 patches per median series, 2..16)")  # fmt: skip
    parser.add_argument("--max-length", type=int, default=None, help="train on random crops of this many steps")
    add_train_args(parser, batch_size=64, lr=1e-3, weight_decay=0.05, warmup=None, log_every=20, ckpt_every=500)


def _split(data, part: str):
    return data if data.split is None else data.part(part)


def pretrain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from masklab.commands._train_args import train_config
    from masklab.data.series import SeriesTrainData, load_series
    from masklab.recipes import series as recipes

    data = load_series(args.data)
    train = _split(data, "train")
    patch = args.patch_len or recipes.auto_patch_len(train)
    extra = {"patch_len": patch, "stride": patch}
    model = recipes.build_model(train, args.preset, seed=args.seed, max_length=args.max_length,
                                mask_kind=args.mask_kind, mask_ratio=args.mask_ratio, **extra)  # fmt: skip
    batch = min(args.batch_size, len(train))
    cfg = train_config(args, model, SeriesTrainData(train, max_length=args.max_length), default_steps=1000,
                       batch_size=batch, warmup_steps=args.warmup or 0)  # fmt: skip
    if args.warmup is None:
        import dataclasses

        cfg = dataclasses.replace(cfg, warmup_steps=cfg.steps // 20)
    print(f"masklab: {data.name}: {len(train)} series x {train.num_channels} channels, lengths "
          f"{train.lengths.min()}-{train.lengths.max()}; {cfg.steps} steps of {cfg.batch_size}")  # fmt: skip
    done = recipes.pretrain(model, train, args.out, train=cfg, source=args.data, max_length=args.max_length,
                            resume=args.resume)  # fmt: skip
    png = recipes.show_reconstructions(done.model, train, Path(args.out) / "reconstruction.png", seed=args.seed)
    loss = done.result.last_metrics.get("loss", float("nan"))
    print(f"masklab: wrote {done.result.out_dir} (step {done.result.step}, loss {loss:.4f}); picture {png}")
    return 0


def _labelled_split(args: argparse.Namespace):
    from masklab.recipes import series as recipes

    data = recipes.run_data(args.run, args.data)
    if data.labels is None or data.split is None:
        raise ValueError(f"{data.name}: classification needs labelled series with a train/test split (a built-in)")
    return data.part("train"), data.part("test")


def probe(args: argparse.Namespace) -> int:
    from masklab.eval.probe import format_probe_table, probe_features
    from masklab.recipes import series as recipes

    model = recipes.load_pretrained(args.run)
    train, test = _labelled_split(args)
    rows = recipes.probe(model, train, test, seed=args.seed)
    stats = [recipes.summary_features(s) for s in (train, test)]
    rows.append(probe_features("summary statistics", stats[0], train.labels, stats[1], test.labels, seed=args.seed))
    print(f"{train.name}: probe trained on {len(train)} series, scored on {len(test)} held-out series")
    print(format_probe_table(rows))
    return 0


def finetune(args: argparse.Namespace) -> int:
    from masklab.recipes import series as recipes

    if args.task != "classify":
        raise ValueError(f"--task {args.task!r} is not available for series runs; use --task classify")
    model = recipes.load_pretrained(args.run)
    train, test = _labelled_split(args)
    steps = args.steps or 300
    cfg = recipes.train_config(steps=steps, minutes=None, batch_size=args.batch_size or 32, lr=args.lr or 5e-4,
                               seed=args.seed, device=args.device)  # fmt: skip
    classifier = recipes.finetune_classify(model, train, num_classes=len(train.classes), config=cfg, out=args.out)
    accuracy = float((recipes.predict_classes(classifier, test) == test.labels).mean())
    print(f"{train.name}: fine-tuned {steps} steps on {len(train)} series; test accuracy {100 * accuracy:.2f}%"
          f" on {len(test)} series")  # fmt: skip
    return 0


def impute(args: argparse.Namespace) -> int:
    """``masklab impute RUN INPUT -o OUT.npz``: fill the NaN steps of a series file with a series run."""
    from pathlib import Path

    import numpy as np

    from masklab.data.series import load_series
    from masklab.recipes import series as recipes

    model = recipes.load_pretrained(args.run)
    data = load_series(args.input)
    out = Path(args.output)
    if out.suffix != ".npz":
        raise ValueError(f"-o {out}: series imputations are written as .npz (values + lengths)")
    filled = recipes.impute(model, data)
    lengths = data.lengths
    values = np.full((len(data), lengths.max(), data.num_channels), np.nan, dtype=np.float32)
    for i, s in enumerate(filled):
        values[i, : len(s)] = s
    np.savez(out, values=values, lengths=lengths)
    missing = int(sum(np.isnan(s).sum() for s in data.series))
    print(f"masklab: filled {missing} missing values in {len(data)} series -> {out}")
    return 0
