"""Pre-registered anomaly-detection suite: MaskedAnomalyDetector vs IsolationForest, LOF, kNN, an autoencoder, ECOD.

PRE-REGISTRATION (committed before the detector below was run on any table of this suite that is new here).
The detector runs with its library defaults, unchanged: ``MaskedAnomalyDetector(random_state=seed)`` =
preset ``table-tiny``, 150 AdamW steps of 256 rows at lr 2e-3 in all, ``refit=True`` (75 steps on all rows,
then 75 more on the presumed inliers of a 2,048-row sample), ``n_masks=1``, score ratios (0.25, 0.5, 0.75, 1),
per-column Gaussian / Cauchy error chosen by maximum likelihood, ``contamination=0.1``. These were set for
speed (a 10,000 x 10 fit in seconds on one thread), not on any label. Earlier defaults (``refit`` and the
Gaussian / Cauchy choice) were picked on the labels of ``shuttle``, ``default`` and breast cancer: those three
are "seen" tables; the other seven are new. Every table is reported, wins and losses.

ROUND 2 (issue 18, session 5; committed with the change, before the suite was run on it): the detector's
defaults gained a neighbour term, ``neighbors=5`` (the score adds the row's distance to its 5th nearest other
training row, in the mean-imputed one-hot design of the baselines; each term divided by its interquartile
range over the training rows). It was developed on ``bench/anomaly_dev.py``'s six tables, none of them in
this suite. It is not a clean held-out test: the idea came from this suite's round-1 table, where the kNN
baseline ranked best. Everything else is unchanged; ``--set neighbors=0`` runs round 1's detector.

Protocol (unsupervised, ODDS-style): labels are never used for training or tuning. For each seed a table is
drawn (the outlier class subsampled to the stated share, seeded; shuttle: a seeded 10,000-row sample at its
natural rate), every method is fit on all its rows and scores the same rows; ROC-AUC and PR-AUC (average
precision), mean ± std over seeds; the rank of each method per table (1 = best mean ROC-AUC) and the mean
rank over tables; fit + score seconds per seed, wall clock and process CPU time (one torch thread,
OMP_NUM_THREADS=1; wall clock on a shared machine is inflated by other processes' load).

Tables (inliers / outliers; C = feature columns; cat = categorical columns; miss = missing cells):

=============== ================================================================ ============================
shuttle         river ODDS Shuttle, 10,000-row sample, natural 7.15% (seen)       C 9
default         ISLP Default: no default / default, natural 3.3% (seen)           C 3, cat 1
breast-cancer   sklearn: benign / malignant subsampled to 5% (seen data)          C 30
wine            sklearn: classes 1, 2 / class 0 subsampled to 7%                  C 13
segment         river Image Segmentation: 6 classes / brickface subsampled to 3%  C 18
oj              ISLP OJ: Purchase CH / MM subsampled to 5%                        C 17, cat 1 (Store7)
carseats        ISLP Carseats: ShelveLoc Good+Medium / Bad subsampled to 5%       C 10, cat 2 (Urban, US)
credit          ISLP Credit: non-students / students subsampled to 5%             C 10, cat 3 (Gender, ...)
auto            ISLP Auto.data: US cars / Japanese cars subsampled to 5%          C 7, miss (horsepower "?")
college-mcar    ISLP College: private / public subsampled to 5%; 20% MCAR cells  C 17, miss 20%
=============== ================================================================ ============================

Baselines see standardised numeric columns (missing cells mean-imputed) and one-hot categorical ones:
IsolationForest (100 trees), LOF (k = 20), kNN distance (largest distance to the k = 5 nearest neighbours,
PyOD's default), ECOD (PyOD), a plain autoencoder (MLP C -> 64 -> C/2 -> 64 -> C, no masking, 50 epochs;
score = reconstruction MSE). masklab gets the raw frame (categories and missing cells as they are).

    python bench/anomaly.py --jsonl runs.jsonl                 # 10 tables, 5 seeds, all methods
    python bench/anomaly.py --tables wine,auto --seeds 1       # a quick look
    python bench/anomaly.py --report runs.jsonl                # the tables again, from the records
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

TABLES = ("shuttle", "default", "breast-cancer", "wine", "segment", "oj", "carseats", "credit", "auto", "college-mcar")
METHODS = ("iforest", "lof", "knn", "ecod", "autoencoder", "masklab")


# ------------------------------------------------------------------------------------------------ tables
def _islp(name: str, **read):
    import pandas as pd

    from masklab.data import package_file

    return pd.read_csv(package_file("ISLP", "data", name, install_hint="pip install --no-deps ISLP"), **read)


def _odds(frame, is_outlier, share: float, seed: int):
    """Inliers + the outlier class subsampled to ``share`` of the result (at least 2 rows), seeded."""
    rng = np.random.default_rng(seed)
    inliers = np.flatnonzero(~is_outlier)
    want = max(2, round(share * len(inliers) / (1 - share)))
    outliers = rng.choice(np.flatnonzero(is_outlier), size=min(want, int(is_outlier.sum())), replace=False)
    rows = np.sort(np.concatenate([inliers, outliers]))
    return frame.iloc[rows].reset_index(drop=True), is_outlier[rows].astype(int)


def load_table(name: str, seed: int):
    """``(features DataFrame, labels (N,) 1 = outlier)`` of suite table ``name`` for ``seed``."""
    import pandas as pd

    from masklab.data import package_file
    from masklab.data.tables import load_builtin

    if name in ("shuttle", "default"):
        table = load_builtin(name)
        frame, labels = table.frame, table.labels.to_numpy().astype(int)
        if len(frame) > 10_000:
            rows = np.sort(np.random.default_rng(seed).choice(len(frame), 10_000, replace=False))
            frame, labels = frame.iloc[rows].reset_index(drop=True), labels[rows]
        return frame, labels
    if name in ("breast-cancer", "wine"):
        table = load_builtin(name)
        target = table.labels.to_numpy()
        outlier = target == 1 if name == "breast-cancer" else target == 0
        return _odds(table.frame, outlier, 0.05 if name == "breast-cancer" else 0.07, seed)
    if name == "segment":
        frame = pd.read_csv(package_file("river", "datasets", "segment.csv.zip"))
        return _odds(frame.drop(columns="category"), (frame["category"] == "brickface").to_numpy(), 0.03, seed)
    if name == "oj":
        frame = _islp("OJ.csv")
        return _odds(frame.drop(columns="Purchase"), (frame["Purchase"] == "MM").to_numpy(), 0.05, seed)
    if name == "carseats":
        frame = _islp("Carseats.csv")
        return _odds(frame.drop(columns="ShelveLoc"), (frame["ShelveLoc"] == "Bad").to_numpy(), 0.05, seed)
    if name == "credit":
        frame = _islp("Credit.csv")
        return _odds(frame.drop(columns=["ID", "Student"]), (frame["Student"] == "Yes").to_numpy(), 0.05, seed)
    if name == "auto":
        frame = _islp("Auto.data", sep=r"\s+", na_values="?")
        frame = frame[frame["origin"] != 2]  # US (1) vs Japan (3); European cars left out
        return _odds(frame.drop(columns=["origin", "name"]), (frame["origin"] == 3).to_numpy(), 0.05, seed)
    if name == "college-mcar":
        frame = _islp("College.csv")
        frame, labels = _odds(frame.drop(columns="Private"), (frame["Private"] == "No").to_numpy(), 0.05, seed)
        hidden = np.random.default_rng(seed + 1000).random(frame.shape) < 0.2
        return frame.astype(float).mask(hidden), labels
    raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")


# ----------------------------------------------------------------------------------------------- methods
def design_matrix(frame) -> np.ndarray:
    """Standardised numeric columns (missing cells mean-imputed) + one-hot categorical ones."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    numeric = [c for c in frame.columns if c not in categorical]
    encoder = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
        ],
        sparse_threshold=0.0,
    )
    return encoder.fit_transform(frame).astype(np.float32)


def autoencoder_scores(x: np.ndarray, seed: int, epochs: int = 50) -> np.ndarray:
    """A plain (unmasked) MLP autoencoder with a bottleneck; per-row reconstruction MSE."""
    torch.manual_seed(seed)
    width = x.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(width, 64), torch.nn.ReLU(), torch.nn.Linear(64, max(2, width // 2)), torch.nn.ReLU(),
        torch.nn.Linear(max(2, width // 2), 64), torch.nn.ReLU(), torch.nn.Linear(64, width),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = torch.from_numpy(x)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            loss = ((model(train[batch]) - train[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return ((model(train) - train) ** 2).mean(1).numpy()


def method_scores(method: str, frame, seed: int, params: dict) -> np.ndarray:
    """Anomaly scores of every row (higher = more anomalous), fit on the same rows."""
    if method == "masklab":
        from masklab.estimators import MaskedAnomalyDetector

        return MaskedAnomalyDetector(random_state=seed, **params).fit(frame).anomaly_score(frame)
    x = design_matrix(frame)
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return -IsolationForest(random_state=seed).fit(x).score_samples(x)
    if method == "lof":
        from sklearn.neighbors import LocalOutlierFactor

        lof = LocalOutlierFactor(n_neighbors=20).fit(x)
        return -lof.negative_outlier_factor_
    if method == "knn":
        from sklearn.neighbors import NearestNeighbors

        distances, _ = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x)  # itself + 5 neighbours
        return distances[:, -1]
    if method == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD().fit(x).decision_scores_
    if method == "autoencoder":
        return autoencoder_scores(x, seed)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


# -------------------------------------------------------------------------------------------------- main
def ranks(means: dict[str, float]) -> dict[str, float]:
    """Rank per method (1 = highest value; ties share the mean rank)."""
    from scipy.stats import rankdata

    names = list(means)
    return dict(zip(names, rankdata([-means[m] for m in names]).tolist(), strict=True))


def report(records: list[dict], methods: list[str]) -> None:
    """Print the suite's tables from per-seed records (ROC/PR per table, mean ranks, seconds)."""
    tables = list(dict.fromkeys(r["table"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    print(f"ROC-AUC / PR-AUC, mean ± std over seeds {seeds}\n")
    print("| table | rows | outliers | seeds | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 4) + "|")
    roc_ranks, pr_ranks, timing = [], [], []
    for name in tables:
        mine = [r for r in records if r["table"] == name]
        done = sorted({r["seed"] for r in mine if all(any(q["seed"] == r["seed"] and q["method"] == m for q in mine)
                                                      for m in methods)})  # fmt: skip
        rows = [r for r in mine if r["seed"] in done]
        if not rows:
            continue
        get = {m: {k: [r[k] for r in rows if r["method"] == m] for k in ("roc_auc", "pr_auc", "wall_s", "cpu_s")}
               for m in methods}  # fmt: skip
        roc_ranks.append(ranks({m: np.mean(get[m]["roc_auc"]) for m in methods}))
        pr_ranks.append(ranks({m: np.mean(get[m]["pr_auc"]) for m in methods}))
        cells = [
            f"{np.mean(get[m]['roc_auc']):.3f} ± {np.std(get[m]['roc_auc']):.3f} / "
            f"{np.mean(get[m]['pr_auc']):.3f} ± {np.std(get[m]['pr_auc']):.3f}"
            for m in methods
        ]
        rate = np.mean([r["outliers"] for r in rows])
        print(f"| {name} | {rows[0]['rows']} | {rate:.1%} | {len(done)} | " + " | ".join(cells) + " |")
        timing.append((name, {m: (np.mean(get[m]["wall_s"]), np.mean(get[m]["cpu_s"])) for m in methods}))
    print(f"\nMean rank over {len(roc_ranks)} tables (1 = best), by ROC-AUC / by PR-AUC:\n")
    print("| method | ROC-AUC rank | PR-AUC rank |\n|---|---|---|")
    for m in methods:
        print(f"| {m} | {np.mean([r[m] for r in roc_ranks]):.2f} | {np.mean([r[m] for r in pr_ranks]):.2f} |")
    print("\nFit + score seconds per seed, wall (process CPU), measured under other processes' load:\n")
    print("| table | " + " | ".join(methods) + " |\n" + "|---" * (len(methods) + 1) + "|")
    for name, t in timing:
        print(f"| {name} | " + " | ".join(f"{t[m][0]:.1f} ({t[m][1]:.1f})" for m in methods) + " |")


def main() -> None:
    import platform
    import subprocess

    from settings import parse_settings  # bench/settings.py (this script's folder is on sys.path)
    from sklearn.metrics import average_precision_score, roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MaskedAnomalyDetector param")
    parser.add_argument("--jsonl", default=None, help="append one JSON line per (table, seed, method) here")
    parser.add_argument("--report", nargs="+", default=None, metavar="JSONL", help="only print tables from these")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if args.report:
        from pathlib import Path

        lines = [line for path in args.report for line in Path(path).read_text(encoding="utf-8").splitlines()]
        records = [json.loads(line) for line in lines if line.strip()]
        order = {name: i for i, name in enumerate(TABLES)}
        report(sorted(records, key=lambda r: (order.get(r["table"], 99), r["seed"])), methods)
        return
    torch.set_num_threads(1)
    params = parse_settings(args.set)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model} ({platform.machine()}); torch threads {torch.get_num_threads()}; masklab params {params}")
    records = []
    # Seeds outermost: an interrupted run still has whole seeds of every table.
    for seed in range(args.seeds):
        for name in args.tables.split(","):
            frame, labels = load_table(name, seed)
            for method in methods:
                w, c = time.perf_counter(), time.process_time()
                scores = method_scores(method, frame, seed, params)
                wall, cpu_s = time.perf_counter() - w, time.process_time() - c
                record = {"table": name, "seed": seed, "method": method, "rows": len(labels),
                          "outliers": float(labels.mean()), "roc_auc": roc_auc_score(labels, scores),
                          "pr_auc": average_precision_score(labels, scores), "wall_s": wall, "cpu_s": cpu_s,
                          "params": params}  # fmt: skip
                records.append(record)
                print(json.dumps(record), flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(record) + "\n")
    report(records, methods)


if __name__ == "__main__":
    main()
