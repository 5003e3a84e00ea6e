"""``masklab impute`` and ``masklab score``: table runs (:mod:`masklab.recipes.table`)."""

from __future__ import annotations

import argparse

from masklab.cli._args import names

IMPUTE_HELP = """Only missing cells change: for CSV in and CSV out every other cell is written back as its original
text. Columns the run kept out of its features (table.json) and --exclude columns pass through untouched.
Prints how many cells were filled per column. The input file is never written to."""

SCORE_HELP = """The score of a row is its mean masked reconstruction error (higher = more anomalous): each observed
cell is hidden --n-masks times in random column groups and predicted from the rest of the row (deterministic for
a given --seed). Writes scores.csv (row = 1-based data row, anomaly_score, the label when the input has one,
is_anomaly with --threshold) and a histogram PNG. With a 0/1 label it prints ROC-AUC and PR-AUC.

This scores with the pretrained run's model and squared errors. MaskedAnomalyDetector().fit(table) in Python
also retrains on the presumed inliers and picks a Gaussian or Cauchy error per column (its defaults refit and
numeric_error="auto"), which scores better on bench/anomaly.py; both need training rows."""


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain table'")
    if name == "impute":
        parser.description = IMPUTE_HELP
        parser.add_argument("input", metavar="INPUT", help="CSV or Parquet file with missing cells (empty / NA / NaN)")
        parser.add_argument("-o", "--output", required=True, help="output file (.csv or .parquet); never the input")
        parser.add_argument("--exclude", default="", metavar="COL,...", help="columns to pass through unchanged")
        parser.add_argument(
            "--n-masks", type=int, default=0, help="test-time mask rounds to average (default 0 = plain)"
        )
        parser.set_defaults(func=_impute)
    else:
        parser.description = SCORE_HELP
        parser.add_argument("input", metavar="INPUT", help="CSV / Parquet file or builtin:NAME")
        parser.add_argument("-o", "--output", required=True, help="scores CSV to write")
        parser.add_argument("--histogram", default=None, help="histogram PNG (default: OUTPUT with .png)")
        parser.add_argument("--exclude", default="", metavar="COL,...", help="columns that are not features")
        parser.add_argument("--label", default=None, metavar="COL", help="0/1 label column for ROC-AUC / PR-AUC")
        parser.add_argument("--n-masks", type=int, default=4, help="times each cell is hidden (default 4)")
        parser.add_argument("--threshold", type=float, default=None, help="flag rows scoring above this")
        parser.add_argument("--seed", type=int, default=0, help="seed of the inference masks")
        parser.set_defaults(func=_score)
    parser.add_argument("--handle-unknown", choices=("error", "missing"), default="error",
                        help="a category unseen in training: fail (default) or treat it as missing")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="stream the table in chunks of this many rows (Parquet: per row group), writing the "
                        "output as it goes: flat memory (impute re-writes cells with pandas; score skips the "
                        "histogram and label metrics)")  # fmt: skip


def _chunked(args: argparse.Namespace, name: str) -> int:
    from masklab.recipes import table_stream

    common = dict(chunk_rows=args.chunk_rows, exclude=names(args.exclude), n_masks=args.n_masks,
                  handle_unknown=args.handle_unknown, device=args.device)  # fmt: skip
    if name == "impute":
        r = table_stream.impute_chunked(args.run, args.input, args.output, **common)
    else:
        r = table_stream.score_chunked(args.run, args.input, args.output, threshold=args.threshold, seed=args.seed,
                                       **common)  # fmt: skip
    print(f"masklab: {name} {r['rows']} rows in chunks of {args.chunk_rows}: {args.input} -> {args.output}")
    return 0


def _impute(args: argparse.Namespace) -> int:
    from masklab.recipes.table import impute

    if args.chunk_rows is not None:
        return _chunked(args, "impute")

    r = impute(args.run, args.input, args.output, exclude=names(args.exclude), n_masks=args.n_masks,
               handle_unknown=args.handle_unknown, device=args.device)  # fmt: skip
    counts = r["filled"]
    width = max(len("column"), *(len(c) for c in counts))
    print(f"masklab: filled {sum(counts.values())} missing cells of {r['rows']} rows: {args.input} -> {args.output}")
    print(f"{'column':<{width}}  filled")
    for column, count in counts.items():
        print(f"{column:<{width}}  {count}")
    if r["passthrough"]:
        print(f"passed through unchanged (not features): {r['passthrough']}")
    return 0


def _score(args: argparse.Namespace) -> int:
    import numpy as np

    from masklab.recipes.table import score

    if args.chunk_rows is not None:
        return _chunked(args, "score")
    r = score(args.run, args.input, args.output, histogram=args.histogram, exclude=names(args.exclude),
              label=args.label, n_masks=args.n_masks, threshold=args.threshold, handle_unknown=args.handle_unknown,
              seed=args.seed, device=args.device)  # fmt: skip
    scores = r["scores"]
    q = np.quantile(scores, [0.5, 0.9, 0.99])
    print(f"masklab: scored {len(scores)} rows of {r['name']} -> {r['output']} (histogram {r['histogram']})")
    print(f"anomaly score: median {q[0]:.4g}  p90 {q[1]:.4g}  p99 {q[2]:.4g}  max {scores.max():.4g}")
    if args.threshold is not None:
        print(f"rows above --threshold {args.threshold:g}: {r['flagged']}")
    if "roc_auc" in r:
        print(f"label {r['label']!r} ({r['positive']:.2%} positive): ROC-AUC {r['roc_auc']:.4f}  "
              f"PR-AUC {r['pr_auc']:.4f}")  # fmt: skip
    elif r["has_label"]:
        print(f"label {r['label']!r} is not 0/1: no ROC-AUC")
    return 0
