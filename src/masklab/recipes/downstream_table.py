"""``embed`` and ``probe`` for table runs (TableMAE): features ``(N, D)`` float32, the encoder's mean over each
row's observed cells (nothing else hidden; :meth:`masklab.models.table.TableMAE.embed`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from masklab.eval.probe import ProbeResult, probe_features
from masklab.recipes.embedding import Embedding
from masklab.recipes.progress import Progress, batches, say
from masklab.train.run import Run


def _table(run: str | Path, data: str | None):
    """``(spec, Table)``: ``data`` (default: the run's) with the run's excluded and label columns set aside."""
    from masklab.recipes.mae import run_data
    from masklab.recipes.table import DEFAULT_DATA, TABLE_FILE, inference_table

    info = Run(run).read_sidecar(TABLE_FILE)
    spec, _ = run_data(data, info.get("data"), Path(run) / TABLE_FILE, DEFAULT_DATA)  # found from any folder
    label = info.get("label") if spec.startswith("builtin:") else None  # files: inference_table finds it
    return spec, inference_table(run, spec, exclude=tuple(info.get("exclude", ())), label=label)


def _features(model, encoded, batch_size: int, progress: Progress | None, stage: str) -> np.ndarray:
    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for part in batches(len(encoded), batch_size, progress, stage):
            chunks.append(model.embed(encoded.values[part].to(device), encoded.categories[part].to(device),
                                      encoded.missing[part].to(device)).float().cpu())  # fmt: skip
    return torch.cat(chunks).numpy()


def _load(run: str | Path, data: str | None, device: str, progress: Progress | None):
    from masklab.tokenizers.table import encode_frame

    model = Run(run).load_model(device, kind="table")
    say(progress, "reading and encoding the table")
    spec, table = _table(run, data)
    return model, spec, table, encode_frame(table.frame, model.config.schema, handle_unknown="missing")


def embed_table(run: str | Path, *, data: str | None = None, batch_size: int | None = None, device: str = "auto",
                skip_bad: bool = False, progress: Progress | None = None) -> Embedding:  # fmt: skip
    """Features of every row of ``data`` (default: the run's table), sources ``data[row id]`` (the table's row
    index) and the label column's value when the run recorded one. (``skip_bad``: a table file is read whole.)"""
    model, spec, table, encoded = _load(run, data, device, progress)
    features = _features(model, encoded, batch_size or 1024, progress, f"encoding {len(encoded)} rows")
    sources = [f"{spec}[{i}]" for i in table.frame.index]
    labels = None if table.labels is None else [str(v) for v in table.labels.tolist()]
    return Embedding.of(features, sources, labels)


def probe_table(run: str | Path, *, data: str | None = None, max_examples: int | None = None, seed: int = 0,
                batch_size: int | None = None, device: str = "auto", skip_bad: bool = False,
                progress: Progress | None = None) -> list[ProbeResult]:  # fmt: skip
    """Linear-probe and k-NN accuracy of the frozen features on a seeded, stratified 80/20 split of the rows,
    next to a random-init TableMAE of the same shape and the encoded cells themselves (standardised numbers,
    category codes, missing flags). Needs a label column (the run's ``--label``, or a built-in's)."""
    from masklab.data.images import split_indices
    from masklab.models.table import TableMAE

    model, spec, table, encoded = _load(run, data, device, progress)
    if table.labels is None:
        raise ValueError(f"--data {spec} has no label column; pretrain the table run with --label COLUMN to probe")
    names, codes = np.unique(table.labels.astype(str).to_numpy(), return_inverse=True)
    labels = torch.as_tensor(codes)
    train_idx, test_idx = split_indices(len(labels), labels, 0.2, seed)
    if max_examples is not None:  # a seeded random subset of the training rows
        keep = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(seed))[:max_examples]
        train_idx = train_idx[keep].sort().values
    ty, vy = codes[train_idx.numpy()], codes[test_idx.numpy()]
    torch.manual_seed(seed)
    random_model = TableMAE(model.config).to(next(model.parameters()).device).eval()
    rows = []
    for name, m in (("TableMAE encoder", model), ("random encoder", random_model)):
        feats = _features(m, encoded, batch_size or 1024, progress, f"{name}: encoding {len(encoded)} rows")
        say(progress, f"{name}: fitting the linear probe and k-NN")
        rows.append(probe_features(name, feats[train_idx], ty, feats[test_idx], vy, seed=seed))
    say(progress, "raw cells: fitting the linear probe and k-NN")
    raw = torch.cat([encoded.values, encoded.categories.float(), encoded.missing.float()], dim=1).numpy()
    rows.append(probe_features("raw cells", raw[train_idx], ty, raw[test_idx], vy, seed=seed))
    print(f"{spec}: probe of {len(names)} classes of {table.label_name!r} trained on {len(train_idx)} rows, "
          f"scored on {len(test_idx)} held-out rows")  # fmt: skip
    return rows
