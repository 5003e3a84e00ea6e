"""Per-cell explanations of anomaly scores: which cells of a row are surprising, and what was expected there.

Shape legend: ``N`` rows, ``C`` columns, ``K`` inference patterns, ``R`` score ratios.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd

    from masklab.models.table import TableMAE
    from masklab.tokenizers.table import EncodedTable


@torch.no_grad()
def hidden_predictions(model: TableMAE, encoded: EncodedTable, patterns: torch.Tensor) -> tuple[np.ndarray, dict]:
    """The model's prediction of each cell while hidden by the patterns ``bool (K, C)`` (True = hidden),
    averaged over the patterns that hid it: ``numeric (N, C)`` float64 in standardised units (NaN where no
    pattern hid the cell) and ``{column index: probabilities (N, K_c)}`` for categorical columns."""
    from masklab.models.table.model import _chunks

    device = next(model.parameters()).device
    n_rows, n_columns = encoded.values.shape
    numeric = np.zeros((n_rows, n_columns))
    count = np.zeros((n_rows, n_columns))
    probs = {j: np.zeros((n_rows, hi - lo)) for j, (lo, hi) in model.category_slices.items()}
    for rows in _chunks(n_rows):
        v, c, m = (t[rows].to(device) for t in (encoded.values, encoded.categories, encoded.missing))
        for pattern in patterns.to(device):
            pred = model(v, c, m | pattern)
            hid = pattern.cpu().numpy()[None, :].repeat(len(v), 0)  # (B, C)
            numeric[rows] += np.where(hid, pred.numeric.double().cpu().numpy(), 0.0)
            count[rows] += hid
            for j, logits in pred.logits.items():
                probs[j][rows] += hid[:, j : j + 1] * logits.float().softmax(-1).double().cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        numeric = numeric / count
        probs = {j: p / count[:, j : j + 1] for j, p in probs.items()}
    return numeric, probs


def explain_rows(detector, frame: pd.DataFrame, encoded: EncodedTable, contributions: np.ndarray, patterns,
                 *, top: int | None = None, round_integers: bool = True) -> pd.DataFrame:  # fmt: skip
    """The long explanation table of :meth:`MaskedAnomalyDetector.explain` from ``contributions (N, C)``
    (each cell's part of its row's score) and the smallest-scale ``patterns (K, C)``. ``expected`` holds what
    the imputer would fill: rounded in whole-number columns when ``round_integers`` (a DataFrame's), the
    column's own values in categorical ones (bools for bools, ints for ints)."""
    import pandas as pd

    from masklab.estimators.imputer import _numbers, _own_values

    schema = detector.schema_
    numeric, probs = hidden_predictions(detector.model_, encoded, patterns)
    expected = np.empty(numeric.shape, dtype=object)
    recorded = getattr(detector, "category_values_", None) or {}
    observed = ~encoded.missing.numpy()  # (N, C)
    for j, (spec, (_, column)) in enumerate(zip(schema.columns, frame[schema.names].items(), strict=True)):
        if spec.kind == "numeric":
            values = numeric[:, j] * spec.std + spec.mean
            expected[:, j] = np.round(values) if spec.integer and round_integers else values
            continue
        keys = np.asarray(spec.categories, dtype=object)[probs[j].argmax(1)]
        numbers = pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype)
        own = _numbers(keys) if numbers else _own_values(keys, column, observed[:, j], spec.categories,
                                                            recorded.get(spec.name))  # fmt: skip
        expected[:, j] = own
    scores = contributions.sum(axis=1)  # (N,)
    order = np.argsort(-contributions, axis=1, kind="stable")  # (N, C) largest part first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, order.shape[1] + 1)[None, :].repeat(len(order), 0), axis=1)
    rows, cols = np.nonzero(observed)
    ranks = rank[rows, cols]
    # Missing cells take no part; rank counts observed cells only, so renumber within each row.
    out = pd.DataFrame({"row": rows, "anomaly_score": scores[rows], "raw_rank": ranks, "column_index": cols})
    out = out.sort_values(["row", "raw_rank"], kind="stable")
    out["rank"] = out.groupby("row").cumcount() + 1
    if top is not None:
        out = out[out["rank"] <= top]
    r, c = out["row"].to_numpy(), out["column_index"].to_numpy()
    names = np.asarray(schema.names, dtype=object)
    positions = [frame.columns.get_loc(name) for name in schema.names]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(scores[r] > 0, contributions[r, c] / scores[r], 0.0)
    return pd.DataFrame(
        {
            "row": r,
            "anomaly_score": scores[r],
            "rank": out["rank"].to_numpy(),
            "column": names[c],
            "observed": [frame.iat[i, positions[j]] for i, j in zip(r, c, strict=True)],
            "expected": expected[r, c],
            "contribution": contributions[r, c],
            "share": share,
        }
    )
