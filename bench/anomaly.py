"""Anomaly-detection benchmark: masklab's MaskedAnomalyDetector vs IsolationForest, LOF and a plain autoencoder.

Unsupervised protocol: labels are never used for training or tuning. Each method is fit on a seeded random
subset of the rows (``--train-rows``, anomalies included at their natural rate: the contaminated setting) and
scores every row of the dataset; ROC-AUC and PR-AUC (average precision) against the label, mean ± std over
seeds. Datasets: ODDS Shuttle (river; 49,097 rows, 7.15% anomalies), breast cancer (malignant = anomaly,
37%), ISLP Default (default = anomaly, 3.3%).

Baselines see the same table: numeric columns standardised, categorical ones one-hot encoded.
IsolationForest (100 trees), LOF (k = 20, novelty mode: fit on the training rows, score all), and a plain
autoencoder (MLP C -> 64 -> C/2 -> 64 -> C, no masking; score = reconstruction MSE).

    python bench/anomaly.py                       # 3 seeds, shuttle trained on 10,000 rows
    python bench/anomaly.py --datasets shuttle --seeds 1 --train-rows 5000 --set steps=500
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

DATASETS = ("shuttle", "breast-cancer", "default")
METHODS = ("iforest", "lof", "autoencoder", "masklab")


def design_matrix(frame, train_index: np.ndarray) -> np.ndarray:
    """Standardised numeric + one-hot categorical columns, fitted on the training rows."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    numeric = [c for c in frame.columns if c not in categorical]
    encoder = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)],
        sparse_threshold=0.0,
    )
    encoder.fit(frame.iloc[train_index])
    return encoder.transform(frame).astype(np.float32)


def autoencoder_scores(x: np.ndarray, train_index: np.ndarray, seed: int, epochs: int = 50) -> np.ndarray:
    """A plain (unmasked) MLP autoencoder with a bottleneck; per-row reconstruction MSE."""
    torch.manual_seed(seed)
    width = x.shape[1]
    model = torch.nn.Sequential(
        torch.nn.Linear(width, 64), torch.nn.ReLU(), torch.nn.Linear(64, max(2, width // 2)), torch.nn.ReLU(),
        torch.nn.Linear(max(2, width // 2), 64), torch.nn.ReLU(), torch.nn.Linear(64, width),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train = torch.from_numpy(x[train_index])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            loss = ((model(train[batch]) - train[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        full = torch.from_numpy(x)
        return ((model(full) - full) ** 2).mean(1).numpy()


def method_scores(method: str, frame, train_index: np.ndarray, seed: int, params: dict) -> np.ndarray:
    """Anomaly scores of every row (higher = more anomalous)."""
    if method == "masklab":
        from masklab.estimators import MaskedAnomalyDetector

        detector = MaskedAnomalyDetector(random_state=seed, **params)
        return detector.fit(frame.iloc[train_index]).anomaly_score(frame)
    x = design_matrix(frame, train_index)
    if method == "iforest":
        from sklearn.ensemble import IsolationForest

        return -IsolationForest(random_state=seed).fit(x[train_index]).score_samples(x)
    if method == "lof":
        from sklearn.neighbors import LocalOutlierFactor

        return -LocalOutlierFactor(n_neighbors=20, novelty=True).fit(x[train_index]).score_samples(x)
    if method == "autoencoder":
        return autoencoder_scores(x, train_index, seed)
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def main() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from masklab.data.tables import load_builtin

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-rows", type=int, default=10_000, help="rows to fit on (default 10,000)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MaskedAnomalyDetector param")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    methods = args.methods.split(",")
    print(f"ROC-AUC / PR-AUC, mean ± std over seeds 0..{args.seeds - 1}; masklab params {params}\n")
    print("| dataset | rows (train) | anomalies | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 3) + "|")
    for name in args.datasets.split(","):
        table = load_builtin(name)
        labels = table.labels.to_numpy().astype(int)
        n_train = min(args.train_rows, len(labels))
        cells, seconds = [], {}
        for method in methods:
            roc, pr, start = [], [], time.perf_counter()
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                train_index = np.sort(rng.choice(len(labels), size=n_train, replace=False))
                scores = method_scores(method, table.frame, train_index, seed, params)
                roc.append(roc_auc_score(labels, scores))
                pr.append(average_precision_score(labels, scores))
            seconds[method] = (time.perf_counter() - start) / args.seeds
            cells.append(f"{np.mean(roc):.4f} ± {np.std(roc):.4f} / {np.mean(pr):.4f} ± {np.std(pr):.4f}")
        print(f"| {name} | {len(labels)} ({n_train}) | {labels.mean():.2%} | " + " | ".join(cells) + " |", flush=True)
        print("|  | seconds per seed |  | " + " | ".join(f"{seconds[m]:.1f}" for m in methods) + " |", flush=True)


if __name__ == "__main__":
    main()
