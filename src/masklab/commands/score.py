"""``masklab score RUN INPUT -o scores.csv``: anomaly scores of a table's rows from a trained table run.

The score of a row is its mean masked reconstruction error (higher = more anomalous): each observed cell is
hidden ``--n-masks`` times in random column groups and predicted from the rest of the row (deterministic for
a given ``--seed``). Writes ``scores.csv`` (``row`` = 1-based data row, ``anomaly_score``, the label when the
input has one, ``is_anomaly`` with ``--threshold``) and a histogram PNG. With a 0/1 label it prints ROC-AUC
and PR-AUC (average precision).

This scores with the pretrained run's model and squared errors. ``MaskedAnomalyDetector().fit(table)`` in
Python also retrains on the presumed inliers and picks a Gaussian or Cauchy error per column (its defaults
``refit`` and ``numeric_error="auto"``), which scores better on bench/anomaly.py; both need training rows.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="anomaly scores (masked reconstruction error) of a table's rows",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain table'")
    parser.add_argument("input", metavar="INPUT", help="CSV / Parquet file or builtin:NAME")
    parser.add_argument("-o", "--output", required=True, help="scores CSV to write")
    parser.add_argument("--histogram", default=None, help="histogram PNG (default: OUTPUT with .png)")
    parser.add_argument("--exclude", default="", metavar="COL,...", help="columns that are not features")
    parser.add_argument("--label", default=None, metavar="COL", help="0/1 label column for ROC-AUC / PR-AUC")
    parser.add_argument("--n-masks", type=int, default=4, help="times each cell is hidden (default 4)")
    parser.add_argument("--threshold", type=float, default=None, help="flag rows scoring above this")
    parser.add_argument("--handle-unknown", choices=("error", "missing"), default="error")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inference masks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk-rows", type=int, default=None,
                        help="stream the table in chunks of this many rows (Parquet: per row group), writing scores "
                        "as it goes (flat memory; no label metrics)")  # fmt: skip
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from masklab.apps.table import _names, inference_table
    from masklab.estimators import MaskedAnomalyDetector
    from masklab.viz.histogram import plot_score_histogram

    target = Path(args.output)
    if not args.input.startswith("builtin:"):
        source = Path(args.input)
        if target.exists() and source.exists() and target.resolve() == source.resolve():
            raise ValueError(f"-o {target} is the input file; score never modifies its input, pick another path")
    if args.n_masks < 1:
        raise ValueError(f"--n-masks must be >= 1, got {args.n_masks}")
    detector = MaskedAnomalyDetector.from_run(
        args.run,
        n_masks=args.n_masks,
        threshold=args.threshold,
        handle_unknown=args.handle_unknown,
        random_state=args.seed,
        device=args.device,
    )
    if args.chunk_rows is not None:
        return _run_chunked(args, detector, target)
    table = inference_table(args.run, args.input, exclude=_names(args.exclude), label=args.label)
    scores = detector.anomaly_score(table.frame)
    out = pd.DataFrame({"row": np.arange(1, len(scores) + 1), "anomaly_score": scores})
    labels = None
    if table.labels is not None:
        out[table.label_name] = table.labels.to_numpy()
        values = set(pd.unique(table.labels.dropna()))
        if values <= {0, 1} and len(values) == 2:
            labels = table.labels.to_numpy().astype(int)
    if args.threshold is not None:
        out["is_anomaly"] = (scores > args.threshold).astype(int)
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)
    png = Path(args.histogram) if args.histogram else target.with_suffix(".png")
    plot_score_histogram(scores, png, labels=labels, threshold=args.threshold, title=f"{table.name}: anomaly scores")

    q = np.quantile(scores, [0.5, 0.9, 0.99])
    print(f"masklab: scored {len(scores)} rows of {table.name} -> {target} (histogram {png})")
    print(f"anomaly score: median {q[0]:.4g}  p90 {q[1]:.4g}  p99 {q[2]:.4g}  max {scores.max():.4g}")
    if args.threshold is not None:
        print(f"rows above --threshold {args.threshold:g}: {int(out['is_anomaly'].sum())}")
    if labels is not None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        print(
            f"label {table.label_name!r} ({labels.mean():.2%} positive): ROC-AUC {roc_auc_score(labels, scores):.4f}  "
            f"PR-AUC {average_precision_score(labels, scores):.4f}"
        )
    elif table.labels is not None:
        print(f"label {table.label_name!r} is not 0/1: no ROC-AUC")
    return 0


def _run_chunked(args: argparse.Namespace, detector, target) -> int:
    import numpy as np
    import pandas as pd

    from masklab.data.table_stream import map_table

    names, done = list(detector.feature_names_in_), [0]

    def score(chunk):
        absent = [n for n in names if n not in chunk.columns]
        if absent:
            raise ValueError(f"{args.input}: column(s) {absent} the model was trained on are missing")
        scores = detector.anomaly_score(chunk[names])
        out = pd.DataFrame({"row": np.arange(done[0] + 1, done[0] + len(chunk) + 1), "anomaly_score": scores})
        if args.threshold is not None:
            out["is_anomaly"] = (scores > args.threshold).astype(int)
        done[0] += len(chunk)
        return out

    rows = map_table(args.input, target, score, chunk_rows=args.chunk_rows)
    print(f"masklab: scored {rows} rows of {args.input} in chunks of {args.chunk_rows} -> {target}")
    return 0
