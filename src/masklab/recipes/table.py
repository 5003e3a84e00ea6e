"""Tabular masked autoencoder (TableMAE, ReMasker-style) on CSV / Parquet / built-in tables: ``pretrain_table``,
``impute`` (fill missing cells) and ``score`` (anomaly scores of rows).

A run directory holds fit's files plus ``table.json``: where the data came from, the columns kept out of
the features (``exclude``, the label) and the rows used. Missing cells are simply hidden during training;
cell masks follow masklab's convention (True = hidden / missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from masklab.recipes.common import TrainOptions, train_config, train_run
from masklab.train import FitResult
from masklab.train.run import Run

DEFAULT_DATA = "builtin:shuttle"
TABLE_FILE = "table.json"


def parse_names(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")`` (empty names dropped)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def pretrain_table(
    out: str | Path,
    *,
    data: str = DEFAULT_DATA,
    preset: str = "table-small",
    categorical: Sequence[str] = (),
    numeric: Sequence[str] = (),
    exclude: Sequence[str] = (),
    label: str | None = None,
    max_rows: int | None = None,
    mask_ratio: float = 0.5,
    mask_ratio_jitter: float = 0.25,
    dropout: float = 0.0,
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Pretrain a TableMAE on every row of ``data`` (file or ``builtin:NAME``; missing cells included).

    ``mask_ratio`` is the share of observed cells hidden per row, drawn from ``mask_ratio ± mask_ratio_jitter``
    (0 = ReMasker's fixed share). ``exclude`` / ``label`` columns are kept out of the features; ``max_rows``
    trains on a seeded random subset. Steps default to a size-based count; warmup to 5% of the steps.
    """
    import torch

    from masklab.data.tables import TableTrainData, load_table
    from masklab.estimators import auto_steps
    from masklab.models.table import TableMAE, TableMAEConfig
    from masklab.tokenizers.table import encode_frame, infer_schema

    run = Run(out)
    train = train or TrainOptions()
    arguments = {
        "data": data, "preset": preset, "categorical": list(categorical), "numeric": list(numeric),
        "exclude": list(exclude), "label": label, "max_rows": max_rows, "mask_ratio": mask_ratio,
        "mask_ratio_jitter": mask_ratio_jitter, "dropout": dropout, "train": train.to_dict(),
    }  # fmt: skip
    if not resume:
        run.check_fresh()
    options = train.with_defaults(batch_size=64, lr=1e-3, weight_decay=0.05, log_every=50, ckpt_every=500, seed=0,
                                  device="auto")  # fmt: skip
    seed = options.seed_or_0
    table = load_table(data, exclude=tuple(exclude), label=label)
    frame = table.frame
    if max_rows is not None:
        if max_rows < 1:
            raise ValueError(f"--max-rows must be >= 1, got {max_rows}")
        if max_rows < len(frame):
            frame = frame.sample(n=max_rows, random_state=seed).sort_index()
    schema = infer_schema(frame, categorical=tuple(categorical), numeric=tuple(numeric))
    encoded = encode_frame(frame, schema)
    config = TableMAEConfig.preset(preset, schema, mask_ratio=mask_ratio, mask_ratio_jitter=mask_ratio_jitter,
                                   dropout=dropout)  # fmt: skip
    torch.manual_seed(seed)
    model = TableMAE(config)
    rows = TableTrainData(encoded)
    batch = min(options.batch_size or 64, len(rows))
    cfg = train_config(options, model, rows, default_steps=auto_steps(len(rows), batch), batch_size=batch,
                       warmup=lambda steps: steps // 20)  # fmt: skip
    kinds = {k: sum(c.kind == k for c in schema.columns) for k in ("numeric", "categorical")}
    print(f"masklab: {table.name}: {len(frame)} rows x {len(schema.columns)} columns ({kinds['numeric']} numeric, "
          f"{kinds['categorical']} categorical), {int(encoded.missing.sum())} missing cells; label "
          f"{table.label_name or 'none'}; excluded {list(exclude) or 'none'}; "
          f"{cfg.steps} steps of {cfg.batch_size}")  # fmt: skip
    info = {"data": data, "exclude": list(exclude), "label": table.label_name, "rows": len(table.frame),
            "rows_used": len(frame)}  # fmt: skip
    result = train_run(run, model, rows, cfg, model_config=model.model_config(), recipe="pretrain_table",
                       arguments=arguments, sidecars={TABLE_FILE: info}, resume=resume)  # fmt: skip
    loss = result.last_metrics.get("loss", float("nan"))
    print(f"masklab: wrote {result.out_dir} (step {result.step}, loss {loss:.4f})")
    return result


def inference_table(run: str | Path, source: str, *, exclude: Sequence[str] = (), label: str | None = None):
    """The input of ``impute`` / ``score`` as a :class:`masklab.data.tables.Table`, checked against the run.

    ``source`` is a file or ``builtin:NAME``. Columns that training kept out of the features (its ``exclude``
    and label, from ``table.json``) are set aside again when present; a column the model does not know is an
    error naming it (set it aside with ``exclude``); so is a training column that is absent.
    """
    from masklab.data.tables import load_table, read_table_file, split_columns

    r = Run(run)
    names = [c["name"] for c in r.config()["model"]["schema"]["columns"]]
    info = r.read_sidecar(TABLE_FILE)
    exclude = tuple(exclude)
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
        raise ValueError(f"{source}: unknown column(s) {unknown}; the model was trained on {names} "
                         "(pass --exclude COL,... for columns that are not features)")  # fmt: skip
    absent = [n for n in names if n not in table.frame.columns]
    if absent:
        raise ValueError(f"{source}: column(s) {absent} the model was trained on are missing")
    return table


def _format(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def impute(run: str | Path, source: str | Path, output: str | Path, *, exclude: Sequence[str] = (),
           n_masks: int = 0, handle_unknown: str = "error", device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Fill the missing cells of ``source`` (CSV / Parquet) into ``output``; only missing cells change (CSV
    to CSV keeps every other cell's original text), non-feature columns pass through. Never writes the input.
    Returns ``{"filled": {column: count}, "rows", "passthrough"}``."""
    from masklab.data.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _suffix, read_table_file
    from masklab.estimators import MaskedImputer
    from masklab.tokenizers.table import missing_cells

    source, target = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError(f"-o {target} is the input file; impute never modifies its input, pick another path")
    out_suffix = _suffix(target)
    if out_suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ValueError(f"-o {target}: unknown output format {out_suffix!r} (use .csv or .parquet)")
    features = inference_table(run, str(source), exclude=exclude).frame
    imputer = MaskedImputer.from_run(run, n_masks=n_masks, handle_unknown=handle_unknown, device=device)
    filled = imputer.transform(features)
    fill = {c: missing_cells(features[c]) for c in features.columns}
    if _suffix(source) in CSV_SUFFIXES and out_suffix in CSV_SUFFIXES:
        out = read_table_file(source, as_text=True)  # original text of every cell
        if len(out) != len(features):
            raise ValueError(f"{source}: rows differ between the text and typed reads ({len(out)} vs {len(features)})")
        for column, rows in fill.items():
            if rows.any():
                out.loc[rows, column] = [_format(v) for v in filled.loc[rows, column]]
        out.to_csv(target, index=False, sep="\t" if out_suffix == ".tsv" else ",")
    else:
        out = read_table_file(source)
        for column in features.columns:
            out[column] = filled[column]
        out.to_csv(target, index=False) if out_suffix in CSV_SUFFIXES else out.to_parquet(target, index=False)
    return {"filled": {column: int(rows.sum()) for column, rows in fill.items()}, "rows": len(features),
            "passthrough": [c for c in out.columns if c not in features.columns]}  # fmt: skip


def score(run: str | Path, source: str, output: str | Path, *, histogram: str | Path | None = None,
          exclude: Sequence[str] = (), label: str | None = None, n_masks: int = 4, threshold: float | None = None,
          handle_unknown: str = "error", seed: int = 0, device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Anomaly score of each row (mean masked reconstruction error, higher = more anomalous; each observed
    cell hidden ``n_masks`` times, seeded) -> ``output`` CSV (``row``, ``anomaly_score``, the label,
    ``is_anomaly`` with ``threshold``) and a histogram PNG. Returns the scores and, with a 0/1 label,
    ROC-AUC and PR-AUC."""
    import pandas as pd

    from masklab.estimators import MaskedAnomalyDetector
    from masklab.viz.histogram import plot_score_histogram

    target = Path(output)
    if not source.startswith("builtin:"):
        src = Path(source)
        if target.exists() and src.exists() and target.resolve() == src.resolve():
            raise ValueError(f"-o {target} is the input file; score never modifies its input, pick another path")
    if n_masks < 1:
        raise ValueError(f"--n-masks must be >= 1, got {n_masks}")
    table = inference_table(run, source, exclude=exclude, label=label)
    detector = MaskedAnomalyDetector.from_run(run, n_masks=n_masks, threshold=threshold,
                                              handle_unknown=handle_unknown, random_state=seed,
                                              device=device)  # fmt: skip
    scores = detector.anomaly_score(table.frame)
    out = pd.DataFrame({"row": np.arange(1, len(scores) + 1), "anomaly_score": scores})
    labels = None
    if table.labels is not None:
        out[table.label_name] = table.labels.to_numpy()
        values = set(pd.unique(table.labels.dropna()))
        if values <= {0, 1} and len(values) == 2:
            labels = table.labels.to_numpy().astype(int)
    if threshold is not None:
        out["is_anomaly"] = (scores > threshold).astype(int)
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(target, index=False)
    png = Path(histogram) if histogram else target.with_suffix(".png")
    plot_score_histogram(scores, png, labels=labels, threshold=threshold, title=f"{table.name}: anomaly scores")
    result: dict[str, Any] = {"name": table.name, "scores": scores, "output": target, "histogram": png,
                              "label": table.label_name, "has_label": table.labels is not None,
                              "flagged": None}  # fmt: skip
    if threshold is not None:
        result["flagged"] = int(out["is_anomaly"].sum())
    if labels is not None:
        from sklearn.metrics import average_precision_score, roc_auc_score

        result.update(positive=float(labels.mean()), roc_auc=float(roc_auc_score(labels, scores)),
                      pr_auc=float(average_precision_score(labels, scores)))  # fmt: skip
    return result
