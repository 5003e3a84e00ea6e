"""``masklab impute`` and ``masklab score``: table runs (:mod:`masklab.recipes.table`); ``impute`` on a series
run goes to :mod:`masklab.cli.series`."""

from __future__ import annotations

import argparse
import sys

from masklab.cli._args import names

IMPUTE_HELP = """Only missing cells change: for CSV in and CSV out every other cell is written back as its original
text. INPUT needs the columns the run was trained on ('pretrain table' printed them), in any order. Columns the
run kept out of its features (table.json) and --exclude columns pass through untouched. A numeric column whose
training values were all whole numbers gets whole numbers. Prints how many cells were filled per column. The
input file is never written to."""

SCORE_HELP = """RUN is a 'masklab pretrain table' run or a directory written by MaskedAnomalyDetector.save; the
scores are exactly the estimator's (masked reconstruction error over the detector's masking scales plus the
distance to the 5th nearest training row, with the error models, scales, threshold and neighbour rows stored in
RUN: scoring.json and scoring.safetensors of a run, chosen on its training rows). Writes scores.csv (row =
1-based data row, the --id-column, anomaly_score, the label when the input has one, is_anomaly against the
stored threshold or --threshold) and a histogram PNG. A row whose every cell is missing gets no score (empty
anomaly_score and is_anomaly). With a 0/1 label it prints ROC-AUC and PR-AUC over the rows with a label (a blank
label cell: counted, and drawn as its own group, 'no label'). --explain also writes
OUTPUT.explain.csv (every row's cells ranked by share of the score, observed and expected value) and
OUTPUT.explain.png (the --explain-rows highest-scoring rows)."""


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "run",
        metavar="RUN",
        help="run of 'masklab pretrain table', or a saved estimator folder (impute: a "
        "MaskedImputer, or a 'series' run; score: a MaskedAnomalyDetector)",
    )
    if name == "impute":
        parser.description = IMPUTE_HELP
        parser.add_argument("input", metavar="INPUT", help="CSV / Parquet file with missing cells, or builtin:NAME")
        parser.add_argument("-o", "--output", required=True, help="output file (.csv or .parquet); never the input")
        parser.add_argument("--exclude", default="", metavar="COL,...", help="columns to pass through unchanged")
        parser.set_defaults(func=_impute)
    else:
        parser.description = SCORE_HELP
        parser.add_argument("input", metavar="INPUT", help="CSV / Parquet file or builtin:NAME")
        parser.add_argument("-o", "--output", required=True, help="scores CSV to write")
        parser.add_argument("--histogram", default=None, help="histogram PNG (default: OUTPUT with .png)")
        parser.add_argument("--exclude", default="", metavar="COL,...", help="columns that are not features")
        parser.add_argument("--label", default=None, metavar="COL", help="0/1 label column for ROC-AUC / PR-AUC")
        parser.add_argument("--id-column", default=None, metavar="COL",
                            help="a row identifier (not a feature): written beside each score")  # fmt: skip
        parser.add_argument("--threshold", type=float, default=None, help="flag rows above this (default: stored)")
        parser.add_argument("--explain", action="store_true", help="write OUTPUT.explain.csv and .explain.png")
        parser.add_argument("--explain-rows", type=int, default=12, help="rows in the explanation picture (default 12)")
        parser.set_defaults(func=_score)
    parser.add_argument("--handle-unknown", choices=("error", "missing"), default="error",
                        help="a category unseen in training: fail (default) or treat it as missing")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="stream the table in chunks of this many rows (Parquet: per row group), writing the "
                        "output as it goes: flat memory (impute from CSV to CSV changes only the missing cells' "
                        "text, as without chunks; to Parquet each chunk's column types are read on their own; "
                        "score skips the histogram and label metrics)")  # fmt: skip


def _chunked(args: argparse.Namespace, name: str) -> int:
    from masklab.recipes import table_stream

    common = dict(chunk_rows=args.chunk_rows, exclude=names(args.exclude), handle_unknown=args.handle_unknown,
                  device=args.device)  # fmt: skip
    if name == "impute":
        r = table_stream.impute_chunked(args.run, args.input, args.output, **common)
    else:
        r = table_stream.score_chunked(args.run, args.input, args.output, threshold=args.threshold, **common)
    print(f"masklab: {name} {r['rows']} rows in chunks of {args.chunk_rows}: {args.input} -> {args.output}")
    if r.get("unscored"):
        print(f"masklab: warning: {r['unscored']} row(s) have every cell missing: no score (empty in the CSV)",
              file=sys.stderr)  # fmt: skip
    return 0


def _impute(args: argparse.Namespace) -> int:
    from masklab.recipes.table import impute
    from masklab.train.run import Run

    run = Run(args.run)
    if run.config_path.is_file() and run.kind() == "series":  # a series file in, .npz (values + lengths) out
        from masklab.cli.series import impute as impute_series

        return impute_series(args)
    if args.chunk_rows is not None:
        return _chunked(args, "impute")
    r = impute(args.run, args.input, args.output, exclude=names(args.exclude), handle_unknown=args.handle_unknown,
               device=args.device)  # fmt: skip
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
        options = {"--id-column": args.id_column, "--explain": args.explain, "--label": args.label,
                   "--histogram": args.histogram}  # fmt: skip
        given = [flag for flag, value in options.items() if value]
        if given:
            raise ValueError(f"{', '.join(given)}: not available with --chunk-rows (it writes the scores CSV only)")
        return _chunked(args, "score")
    r = score(args.run, args.input, args.output, histogram=args.histogram, exclude=names(args.exclude),
              label=args.label, threshold=args.threshold, explain=args.explain, explain_rows=args.explain_rows,
              handle_unknown=args.handle_unknown, id_column=args.id_column, device=args.device)  # fmt: skip
    scores = r["scores"][np.isfinite(r["scores"])]
    q = np.quantile(scores, [0.5, 0.9, 0.99])
    print(f"masklab: scored {len(scores)} rows of {r['name']} -> {r['output']} (histogram {r['histogram']})")
    if r["unscored"]:
        print(f"masklab: warning: {r['unscored']} row(s) have every cell missing: no score (empty in the CSV)",
              file=sys.stderr)  # fmt: skip
    print(f"anomaly score: median {q[0]:.4g}  p90 {q[1]:.4g}  p99 {q[2]:.4g}  max {scores.max():.4g}")
    if r["threshold"] is not None:
        print(f"rows above the threshold {r['threshold']:.4g}: {r['flagged']}")
    if r["explained"] is not None:
        print(f"explanations -> {r['explained'][0]} (every row) and {r['explained'][1]} (top {args.explain_rows} rows)")
    unlabelled = f"; {r['unlabelled']} row(s) with no label left out" if r["unlabelled"] else ""
    if "roc_auc" in r:
        print(f"label {r['label']!r} ({r['positive']:.2%} positive{unlabelled}): ROC-AUC {r['roc_auc']:.4f}  "
              f"PR-AUC {r['pr_auc']:.4f}")  # fmt: skip
    elif r["binary"]:
        print(f"label {r['label']!r}: one class only among the scored rows with a label{unlabelled}: no ROC-AUC")
    elif r["has_label"]:
        print(f"label {r['label']!r} is not 0/1: no ROC-AUC")
    return 0
