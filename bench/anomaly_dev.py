"""Development tables for the anomaly detector: ODDS-style tables that ``bench/anomaly.py``'s suite does not use.

Ideas for the detector are tried here, never on the suite's labels. Tables (written down before any
detector variant was run on them; inliers / outliers):

================== ============================================================== =========================
wage               ISLP Wage: education != Advanced Degree / Advanced, 5%          C 10, cat 6
wage-mcar          wage with 20% of the cells hidden (MCAR)                        C 10, cat 6, miss 20%
solar-flare        river Solar Flare: no M/X flare / any M or X flare (natural)    C 11, cat 3
boston             ISLP Boston: chas = 0 / chas = 1 subsampled to 5%               C 12
phishing           river Phishing: legitimate / phishing subsampled to 5%          C 9
bikeshare          ISLP Bikeshare: working or weekend days / holidays (natural)     C 14, cat 3
================== ============================================================== =========================

Methods: those of ``bench/anomaly.py`` (``masklab``: the detector's defaults), ``masklab-recon`` (the
reconstruction term alone, ``neighbors=0``: the detector before its neighbour term) and ``masklab+knn`` (the
prototype the neighbour term was built from: ``masklab-recon``'s score and the baselines' kNN distance, each
centred on its median and divided by its interquartile range over the table's rows, summed).

    python bench/anomaly_dev.py                       # 6 tables, 3 seeds
    python bench/anomaly_dev.py --tables wage --seeds 1
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
import pandas as pd
import torch
from anomaly import _islp, _odds, method_scores, ranks  # bench/anomaly.py (this folder is on sys.path)
from sklearn.metrics import average_precision_score, roc_auc_score

from masklab.data import package_file

TABLES = ("wage", "wage-mcar", "solar-flare", "boston", "phishing", "bikeshare")
METHODS = ("iforest", "lof", "knn", "ecod", "masklab-recon", "masklab+knn", "masklab")


def load_dev_table(name: str, seed: int):
    """``(features DataFrame, labels (N,) 1 = outlier)`` of development table ``name`` for ``seed``."""
    if name in ("wage", "wage-mcar"):
        frame = _islp("Wage.csv")
        advanced = (frame["education"] == "5. Advanced Degree").to_numpy()
        x, y = _odds(frame.drop(columns="education"), advanced, 0.05, seed)
        if name == "wage-mcar":
            hidden = np.random.default_rng(seed + 1000).random(x.shape) < 0.2
            x = x.mask(hidden)
        return x, y
    if name == "solar-flare":
        frame = pd.read_csv(package_file("river", "datasets", "solar-flare.csv.zip"))
        flare = (frame["m-class-flares"] + frame["x-class-flares"] > 0).to_numpy()
        frame = frame.drop(columns=["m-class-flares", "x-class-flares"])
        for column in ("zurich-class", "largest-spot-size", "spot-distribution"):
            frame[column] = frame[column].astype(object)
        return frame, flare.astype(int)
    if name == "boston":
        frame = _islp("Boston.csv")
        return _odds(frame.drop(columns="chas"), (frame["chas"] == 1).to_numpy(), 0.05, seed)
    if name == "phishing":
        frame = pd.read_csv(package_file("river", "datasets", "phishing.csv.gz"))
        return _odds(frame.drop(columns="is_phishing"), (frame["is_phishing"] == 1).to_numpy(), 0.05, seed)
    if name == "bikeshare":
        frame = _islp("Bikeshare.csv")
        frame["hr"] = frame["hr"].astype(str)
        return frame.drop(columns="holiday"), (frame["holiday"] == 1).to_numpy().astype(int)
    raise ValueError(f"unknown table {name!r}; known: {', '.join(TABLES)}")


def robust_z(scores: np.ndarray) -> np.ndarray:
    low, mid, high = np.nanpercentile(scores, [25, 50, 75])
    return (scores - mid) / max(high - low, 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default=",".join(TABLES))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"CPU: {model}; ROC-AUC / PR-AUC, mean over seeds 0..{args.seeds - 1}\n")
    print("| table | rows | outliers | " + " | ".join(METHODS) + " |")
    print("|---" * (len(METHODS) + 3) + "|")
    all_ranks: dict[str, list[float]] = {m: [] for m in METHODS}
    for name in args.tables.split(","):
        roc: dict[str, list[float]] = {m: [] for m in METHODS}
        pr: dict[str, list[float]] = {m: [] for m in METHODS}
        for seed in range(args.seeds):
            frame, labels = load_dev_table(name, seed)
            scores = {m: method_scores(m, frame, seed, {}) for m in ("iforest", "lof", "knn", "ecod", "masklab")}
            scores["masklab-recon"] = method_scores("masklab", frame, seed, {"neighbors": 0})
            scores["masklab+knn"] = robust_z(scores["masklab-recon"]) + robust_z(scores["knn"])
            for m in METHODS:
                s = np.nan_to_num(scores[m], nan=np.nanmax(scores[m]))
                roc[m].append(roc_auc_score(labels, s))
                pr[m].append(average_precision_score(labels, s))
        means = {m: float(np.mean(roc[m])) for m in METHODS}
        for m, r in ranks(means).items():
            all_ranks[m].append(r)
        cells = [f"{np.mean(roc[m]):.3f} / {np.mean(pr[m]):.3f}" for m in METHODS]
        print(f"| {name} | {len(frame)} | {labels.mean():.1%} | " + " | ".join(cells) + " |", flush=True)
    print("\nmean rank by ROC-AUC: " + ", ".join(f"{m} {np.mean(r):.2f}" for m, r in all_ranks.items()))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
