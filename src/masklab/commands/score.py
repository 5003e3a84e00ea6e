"""``masklab score RUN INPUT -o scores.csv``: anomaly scores of a table's rows.

RUN is a ``masklab pretrain table`` run or a directory written by ``MaskedAnomalyDetector.save``. Either way
the scores are exactly the estimator's: a row's score is its mean masked reconstruction error over the
detector's masking scales, with the error models (Gaussian / Cauchy per column) and threshold stored in the
directory (``scoring.json`` of a run, chosen on its training rows by ``pretrain table``; ``estimator.json``
of a saved detector). Writes ``scores.csv`` (``row`` = 1-based data row, ``anomaly_score``, the label when
the input has one, ``is_anomaly`` against the stored threshold or ``--threshold``) and a histogram PNG.
With a 0/1 label it prints ROC-AUC and PR-AUC (average precision).

``--explain``: also ``OUTPUT.explain.csv`` (per row the cells ranked by their share of the score, with the
observed and the expected value) and ``OUTPUT.explain.png`` (the ``--explain-rows`` highest-scoring rows).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="anomaly scores (masked reconstruction error) of a table's rows, optionally explained",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain table' or a saved detector")
    parser.add_argument("input", metavar="INPUT", help="CSV / Parquet file or builtin:NAME")
    parser.add_argument("-o", "--output", required=True, help="scores CSV to write")
    parser.add_argument("--histogram", default=None, help="histogram PNG (default: OUTPUT with .png)")
    parser.add_argument("--exclude", default="", metavar="COL,...", help="columns that are not features")
    parser.add_argument("--label", default=None, metavar="COL", help="0/1 label column for ROC-AUC / PR-AUC")
    parser.add_argument("--threshold", type=float, default=None, help="flag rows above this (default: stored)")
    parser.add_argument("--explain", action="store_true", help="write OUTPUT.explain.csv and OUTPUT.explain.png")
    parser.add_argument("--explain-rows", type=int, default=12, help="rows in the explanation picture (default 12)")
    parser.add_argument("--handle-unknown", choices=("error", "missing"), default="error")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=_run)


def load_detector(path, *, threshold: float | None, handle_unknown: str, device: str):
    """A saved detector (``estimator.json``) or a table run, with ``threshold`` overriding the stored one."""
    from pathlib import Path

    from masklab.estimators import MaskedAnomalyDetector

    if (Path(path) / "estimator.json").is_file():
        detector = MaskedAnomalyDetector.load(path).set_params(handle_unknown=handle_unknown, device=device)
        if threshold is not None:
            detector.threshold_, detector.offset_ = float(threshold), -float(threshold)
        return detector
    return MaskedAnomalyDetector.from_run(path, threshold=threshold, handle_unknown=handle_unknown, device=device)


def _run(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from masklab.apps.table import _names, inference_table
    from masklab.viz.histogram import plot_score_histogram

    target = Path(args.output)
    if not args.input.startswith("builtin:"):
        source = Path(args.input)
        if target.exists() and source.exists() and target.resolve() == source.resolve():
            raise ValueError(f"-o {target} is the input file; score never modifies its input, pick another path")
    if args.explain_rows < 1:
        raise ValueError(f"--explain-rows must be >= 1, got {args.explain_rows}")
    detector = load_detector(args.run, threshold=args.threshold, handle_unknown=args.handle_unknown, device=args.device)
    names = detector.schema_.names
    table = inference_table(args.run, args.input, exclude=_names(args.exclude), label=args.label, names=names)
    frame = table.frame[names]  # the model's column order
    scores = detector.anomaly_score(frame)
    out = pd.DataFrame({"row": np.arange(1, len(scores) + 1), "anomaly_score": scores})
    labels = None
    if table.labels is not None:
        out[table.label_name] = table.labels.to_numpy()
        values = set(pd.unique(table.labels.dropna()))
        if values <= {0, 1} and len(values) == 2:
            labels = table.labels.to_numpy().astype(int)
    threshold = detector.threshold_ if math.isfinite(detector.threshold_) else None
    if threshold is not None:
        out["is_anomaly"] = (scores > threshold).astype(int)
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)
    png = Path(args.histogram) if args.histogram else target.with_suffix(".png")
    plot_score_histogram(scores, png, labels=labels, threshold=threshold, title=f"{table.name}: anomaly scores")

    q = np.quantile(scores, [0.5, 0.9, 0.99])
    print(f"masklab: scored {len(scores)} rows of {table.name} -> {target} (histogram {png})")
    print(f"anomaly score: median {q[0]:.4g}  p90 {q[1]:.4g}  p99 {q[2]:.4g}  max {scores.max():.4g}")
    if threshold is not None:
        print(f"rows above the threshold {threshold:.4g}: {int(out['is_anomaly'].sum())}")
    if args.explain:
        from masklab.viz.explain import plot_explanations

        top = np.argsort(-scores, kind="stable")[: args.explain_rows]
        explanation = detector.explain(frame)
        explanation.insert(0, "data_row", explanation.pop("row") + 1)  # 1-based, as in scores.csv
        csv_path, png_path = target.with_suffix(".explain.csv"), target.with_suffix(".explain.png")
        explanation.to_csv(csv_path, index=False)
        shown = explanation[explanation["data_row"].isin(top + 1)]
        plot_explanations(shown, png_path, title=f"{table.name}: the {len(top)} highest-scoring rows")
        print(f"explanations -> {csv_path} (every row) and {png_path} (top {len(top)} rows)")
    if labels is not None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        print(
            f"label {table.label_name!r} ({labels.mean():.2%} positive): ROC-AUC {roc_auc_score(labels, scores):.4f}  "
            f"PR-AUC {average_precision_score(labels, scores):.4f}"
        )
    elif table.labels is not None:
        print(f"label {table.label_name!r} is not 0/1: no ROC-AUC")
    return 0
