"""Tabular masked autoencoder (TableMAE, ReMasker-style) on CSV / Parquet / built-in tables: ``pretrain_table``,
``impute`` (fill missing cells) and ``score`` (anomaly scores of rows).

A run directory holds fit's files plus ``table.json``: where the data came from, the columns kept out of
the features (``exclude``, the label) and the rows used. Missing cells are simply hidden during training;
cell masks follow masklab's convention (True = hidden / missing).
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from masklab.recipes.common import TrainOptions, locked_run, planned_steps, train_config, train_run
from masklab.recipes.table_output import (
    check_table_outputs,
    explain_paths,
    fill_text_cells,
    histogram_path,
    write_table,
)
from masklab.train import FitResult
from masklab.train.run import Run

if TYPE_CHECKING:
    import pandas as pd

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
    neighbors: int = 5,
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Pretrain a TableMAE on every row of ``data`` (file or ``builtin:NAME``; missing cells included).

    ``mask_ratio`` is the share of observed cells hidden per row, drawn from ``mask_ratio ± mask_ratio_jitter``
    (0 = ReMasker's fixed share). ``exclude`` / ``label`` columns are kept out of the features; ``max_rows``
    trains on a seeded random subset. Steps default to a size-based count; warmup to 5% of the steps.
    ``neighbors``: k of the detector's neighbour term for ``masklab score`` (0 = off), stored with the run's
    scoring state (:func:`~masklab.estimators.detector.calibrate_run`).
    """
    data = None if data is None else os.fspath(data)  # a Path works as a str does
    import torch

    from masklab.core.contract import preset_config, saved_config
    from masklab.data.tables import TableTrainData, load_table
    from masklab.estimators.budget import auto_steps
    from masklab.estimators.detector import calibrate_run
    from masklab.estimators.neighbors import check_neighbors
    from masklab.models.table import PRESETS, TableMAE, TableMAEConfig
    from masklab.recipes.mae import recorded_spec
    from masklab.tokenizers.table import encode_frame, infer_schema

    run = Run(out)
    train = train or TrainOptions()
    arguments = {
        "data": data, "preset": preset, "categorical": list(categorical), "numeric": list(numeric),
        "exclude": list(exclude), "label": label, "max_rows": max_rows, "mask_ratio": mask_ratio,
        "mask_ratio_jitter": mask_ratio_jitter, "dropout": dropout, "neighbors": neighbors, "train": train.to_dict(),
    }  # fmt: skip
    check_neighbors(neighbors, "--neighbors")
    with locked_run(run):  # before any data is read; the scoring state is written under it too
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
        warn_identifiers(frame)
        encoded = encode_frame(frame, schema)
        config = preset_config(TableMAEConfig, PRESETS, preset, schema=schema, mask_ratio=mask_ratio,
                               mask_ratio_jitter=mask_ratio_jitter, dropout=dropout)  # fmt: skip
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
              f"{planned_steps(cfg)}")  # fmt: skip
        print("masklab: columns (impute / score need these, in any order): "
              + ", ".join(f"{c.name} ({'integer' if c.integer else c.kind})" for c in schema.columns))  # fmt: skip
        info = {"data": recorded_spec(data, run.read_sidecar(TABLE_FILE).get("data") if resume else None),
                "exclude": list(exclude), "label": table.label_name, "rows": len(table.frame),
                "rows_used": len(frame)}  # fmt: skip
        result = train_run(run, model, rows, cfg, model_config=saved_config(model), recipe="pretrain_table",
                           arguments=arguments, sidecars={TABLE_FILE: info}, resume=resume)  # fmt: skip

        if os.environ.get("RANK", "0") == "0":  # rank 0 only: the scoring state (error models, threshold)
            calibrate_run(out, frame, neighbors=neighbors)
        loss = result.last_metrics.get("loss", float("nan"))
        print(f"masklab: wrote {result.out_dir} (step {result.step}, loss {loss:.4f})")
        return result


def warn_identifiers(frame: pd.DataFrame) -> list[str]:
    """Print a warning (stderr) naming the columns of ``frame`` that look like row identifiers
    (:func:`masklab.tokenizers.table.identifier_columns`): they are about to be used as features."""
    import sys

    from masklab.tokenizers.table import identifier_columns

    ids = identifier_columns(frame)
    if ids:
        print(f"masklab: warning: column(s) {ids} look like row identifiers (every value distinct, none missing) "
              f"and are used as features; keep them out with --exclude {','.join(ids)} (impute then passes them "
              "through; score --id-column COL writes one beside each score)", file=sys.stderr)  # fmt: skip
    return ids


def trained_aside(run: str | Path) -> tuple[list[str], str | None]:
    """The columns training kept out of the features: the run's ``exclude`` and its label (``table.json``; none
    for a run without one). An ``impute`` / ``score`` input that has them sets them aside again."""
    info = Run(run).read_sidecar(TABLE_FILE) if (Path(run) / TABLE_FILE).is_file() else {}
    return list(info.get("exclude", [])), info.get("label")


def check_known_columns(
    source: str | Path, columns: Iterable[Any], names: Sequence[str], aside: Container[Any] = ()
) -> None:
    """``ValueError`` naming the input ``columns`` of ``source`` that are neither among the model's ``names`` nor
    set aside (``aside``): the user must set them aside with ``--exclude``."""
    unknown = [c for c in columns if c not in names and c not in aside]
    if unknown:
        raise ValueError(f"{source}: unknown column(s) {unknown}; the model was trained on {list(names)} "
                         "(pass --exclude COL,... for columns that are not features)")  # fmt: skip


def inference_table(
    run: str | Path,
    source: str,
    *,
    exclude: Sequence[str] = (),
    label: str | None = None,
    names: Sequence[str] | None = None,
):
    """The input of ``impute`` / ``score`` as a :class:`masklab.data.tables.Table`, checked against the run.

    ``source`` is a file or ``builtin:NAME``. Columns that training kept out of the features (its ``exclude``
    and label, from ``table.json``) are set aside again when present; a column the model does not know is an
    error naming it (set it aside with ``exclude``); so is a training column that is absent. ``names``: the
    model's columns (default: from the run's ``config.json``; a saved detector directory has none).
    """
    source = None if source is None else os.fspath(source)  # a Path works as a str does
    from masklab.data.tables import load_table, read_table_file, split_columns

    r = Run(run)
    if names is None:
        names = [c["name"] for c in r.config()["model"]["schema"]["columns"]]
    names = list(names)
    trained_exclude, trained_label = trained_aside(run)
    exclude = tuple(exclude)
    if source.startswith("builtin:"):
        table = load_table(source, exclude=exclude, label=label)
    else:
        frame = read_table_file(source)
        columns = [str(c) for c in frame.columns]
        if label is None and trained_label in columns:
            label = trained_label
        trained_out = [c for c in trained_exclude if c in columns and c not in exclude]
        table = split_columns(frame, exclude=(*exclude, *trained_out), label=label)
        table = type(table)(table.frame, str(source), table.labels)
    check_known_columns(source, table.frame.columns, names)
    absent = [n for n in names if n not in table.frame.columns]
    if absent:
        raise ValueError(f"{source}: column(s) {absent} the model was trained on are missing; it needs the "
                         f"columns {names} (in any order)")  # fmt: skip
    return table


def impute(run: str | Path, source: str | Path, output: str | Path, *, exclude: Sequence[str] = (),
           handle_unknown: str = "error", device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Fill the missing cells of ``source`` (CSV / Parquet, or ``builtin:NAME``) into ``output``; only missing
    cells change (CSV to CSV keeps every other cell's original text), non-feature columns pass through, the
    model's columns may come in any order. Never writes the input.
    Returns ``{"filled": {column: count}, "rows", "passthrough"}``."""
    from masklab.data.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _suffix, read_table_file
    from masklab.tokenizers.table import missing_cells

    builtin = str(source).startswith("builtin:")
    source, target = Path(source), Path(output)
    if not builtin and not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    check_table_outputs(source, [("-o", target)], "impute")
    out_suffix = _suffix(target)
    if out_suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ValueError(f"-o {target}: unknown output format {out_suffix!r} (use .csv or .parquet)")
    imputer = load_imputer(run, handle_unknown=handle_unknown, device=device)
    table = inference_table(run, str(source), exclude=exclude, names=imputer.schema_.names)
    features = table.frame[imputer.schema_.names]  # the model's column order; written back by name
    with _naming(source):
        filled = imputer.transform(features)
    fill = {c: missing_cells(features[c]) for c in table.frame.columns}
    if builtin:
        out = table.frame.copy()
        if table.labels is not None:
            out[table.label_name] = table.labels.to_numpy()
    elif _suffix(source) in CSV_SUFFIXES and out_suffix in CSV_SUFFIXES:
        out = fill_text_cells(read_table_file(source, as_text=True), filled, fill, str(source))
    else:
        out = read_table_file(source)
    if builtin or not (_suffix(source) in CSV_SUFFIXES and out_suffix in CSV_SUFFIXES):
        for column in features.columns:
            out[column] = filled[column]
    write_table(out, target)
    return {"filled": {column: int(rows.sum()) for column, rows in fill.items()}, "rows": len(features),
            "passthrough": [c for c in out.columns if c not in features.columns]}  # fmt: skip


def _column_of(source: str, name: str) -> np.ndarray:
    """The values of column ``name`` of ``source`` (a file or ``builtin:NAME``), in row order."""
    from masklab.data.tables import load_table

    table = load_table(source)
    frame = table.frame if table.labels is None else table.frame.assign(**{str(table.label_name): table.labels})
    if name not in frame.columns:
        raise ValueError(f"--id-column {name!r} is not a column of {source} (columns: {list(frame.columns)})")
    return frame[name].to_numpy()


def load_imputer(path: str | Path, *, handle_unknown: str = "error", device: str = "cpu"):
    """A saved imputer (``estimator.json``, :meth:`MaskedImputer.save`) or a table run: either way it fills
    cells as the fitted estimator does."""
    from masklab.estimators import ESTIMATOR_FILE, MaskedImputer

    if (Path(path) / ESTIMATOR_FILE).is_file():
        return MaskedImputer.load(path).set_params(handle_unknown=handle_unknown, device=device)
    return MaskedImputer.from_run(path, handle_unknown=handle_unknown, device=device)


def load_detector(path: str | Path, *, threshold: float | None = None, handle_unknown: str = "error",
                  device: str = "cpu"):  # fmt: skip
    """A saved detector (``estimator.json``) or a table run (with its ``scoring.json``): either way it scores
    as the fitted estimator does. ``threshold`` overrides the stored one (a finite number)."""
    import math

    from masklab.estimators import ESTIMATOR_FILE, MaskedAnomalyDetector

    if threshold is not None and not math.isfinite(threshold):
        raise ValueError(f"--threshold must be a finite number, got {threshold}")
    if (Path(path) / ESTIMATOR_FILE).is_file():
        detector = MaskedAnomalyDetector.load(path).set_params(handle_unknown=handle_unknown, device=device)
        if threshold is not None:
            detector.threshold_, detector.offset_ = float(threshold), -float(threshold)
        return detector
    return MaskedAnomalyDetector.from_run(path, threshold=threshold, handle_unknown=handle_unknown, device=device)


@contextmanager
def _naming(source: str | Path):
    """Prefix a ValueError raised while encoding ``source``'s cells (a column and row, no file) with the file."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from err


def score(run: str | Path, source: str, output: str | Path, *, histogram: str | Path | None = None,
          exclude: Sequence[str] = (), label: str | None = None, threshold: float | None = None,
          explain: bool = False, explain_rows: int = 12, handle_unknown: str = "error",
          id_column: str | None = None, device: str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Anomaly score of each row, exactly as :class:`~masklab.estimators.MaskedAnomalyDetector` scores it
    (``run``: a ``pretrain table`` run or a saved detector) -> ``output`` CSV (``row``, the ``id_column`` when
    given (kept out of the features), ``anomaly_score``, the label, ``is_anomaly`` against the stored threshold
    or ``threshold``) and a histogram PNG. A row with no observed cell has no score: NaN (an empty cell in the
    CSV, ``is_anomaly`` empty too), counted in ``unscored``. ``explain``: also ``OUTPUT.explain.csv`` (every
    row's cells ranked by share of the score, observed and expected value) and ``OUTPUT.explain.png`` (the
    ``explain_rows`` highest-scoring rows). Returns the scores and, with a 0/1 label, ROC-AUC and PR-AUC (over
    the scored rows with a label; ``unlabelled`` counts the rows whose label cell is blank)."""
    import math
    import warnings

    import pandas as pd

    from masklab.viz.histogram import plot_score_histogram

    target = Path(output)
    if explain_rows < 1:
        raise ValueError(f"--explain-rows must be >= 1, got {explain_rows}")
    png = histogram_path(target, histogram)
    csv_path, png_path = explain_paths(target)
    explained = [("--explain", csv_path), ("--explain", png_path)] if explain else []
    check_table_outputs(source, [("-o", target), ("--histogram", png), *explained], "score")
    detector = load_detector(run, threshold=threshold, handle_unknown=handle_unknown, device=device)
    names = detector.schema_.names
    if id_column is not None and id_column in names:
        raise ValueError(f"--id-column {id_column!r} is one of the model's features {names}; an id column must "
                         "have been kept out of training (pretrain table --exclude)")  # fmt: skip
    ids = None if id_column is None else _column_of(source, id_column)
    table = inference_table(run, source, exclude=(*exclude, *([id_column] if id_column else [])), label=label,
                            names=names)  # fmt: skip
    frame = table.frame[names]  # the model's column order
    with warnings.catch_warnings():  # the rows without an observed cell are reported in the result instead
        warnings.simplefilter("ignore", UserWarning)
        with _naming(source):
            scores = detector.anomaly_score(frame)
    scored = np.isfinite(scores)
    if not scored.any():
        raise ValueError(f"{source}: every row has every feature cell missing; there is nothing to score")
    out = pd.DataFrame({"row": np.arange(1, len(scores) + 1)})
    if id_column is not None:
        out[id_column] = ids
    out["anomaly_score"] = scores
    labels = None
    if table.labels is not None:
        out[table.label_name] = table.labels.to_numpy()
        values = set(pd.unique(table.labels.dropna()))
        if values <= {0, 1} and len(values) == 2:  # float: NaN = a blank label cell (no label)
            labels = table.labels.to_numpy(dtype=np.float64, na_value=np.nan)
    limit = detector.threshold_ if math.isfinite(detector.threshold_) else None
    if limit is not None:
        out["is_anomaly"] = pd.array(np.where(scored, scores > limit, 0).astype(int), dtype="Int64")
        out.loc[~scored, "is_anomaly"] = pd.NA
    for folder in (target.parent, png.parent):
        folder.mkdir(parents=True, exist_ok=True)
    write_table(out, target)
    plot_score_histogram(scores[scored], png, labels=None if labels is None else labels[scored], threshold=limit,
                         title=f"{table.name}: anomaly scores")  # fmt: skip
    result: dict[str, Any] = {"name": table.name, "scores": scores, "output": target, "histogram": png,
                              "label": table.label_name, "has_label": table.labels is not None,
                              "threshold": limit, "flagged": None, "explained": None,
                              "unscored": int((~scored).sum()),
                              "binary": labels is not None,
                              "unlabelled": 0 if labels is None else int(np.isnan(labels).sum())}  # fmt: skip
    if limit is not None:
        result["flagged"] = int(out["is_anomaly"].sum())
    if explain:
        from masklab.viz.explain import plot_explanations

        top = np.argsort(-scores, kind="stable")[:explain_rows]
        explanation = detector.explain(frame)
        explanation.insert(0, "data_row", explanation.pop("row") + 1)  # 1-based, as in the scores CSV
        if id_column is not None:  # each explained row named as in the scores CSV
            explanation.insert(1, id_column, np.asarray(ids, dtype=object)[explanation["data_row"].to_numpy() - 1])
        write_table(explanation, csv_path)
        shown = explanation[explanation["data_row"].isin(top + 1)]
        plot_explanations(shown, png_path, title=f"{table.name}: the {len(top)} highest-scoring rows")
        result["explained"] = (csv_path, png_path)
    known = scored if labels is None else scored & ~np.isnan(labels)  # the AUCs: scored rows with a label
    if labels is not None and len(set(labels[known])) == 2:
        from sklearn.metrics import average_precision_score, roc_auc_score

        labels, scores = labels[known], scores[known]
        result.update(positive=float(labels.mean()), roc_auc=float(roc_auc_score(labels, scores)),
                      pr_auc=float(average_precision_score(labels, scores)))  # fmt: skip
    return result
