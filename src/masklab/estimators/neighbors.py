"""Neighbour distances for anomaly scores: how far is a row from its k-th nearest training row?

A masked reconstruction error asks whether a row's cells fit *each other*; a row whose cells are mutually
consistent but unlike any training row (a new cluster, a rare class) can still be predicted well. The distance
to the k-th nearest training row (Ramaswamy et al. 2000; PyOD's ``KNN``) asks the other question, and
:class:`~masklab.estimators.MaskedAnomalyDetector` adds both.

Space (the detector's own encoding, :class:`~masklab.tokenizers.table.EncodedTable`): numeric cells in
standardised units, a missing numeric cell at the column's mean (0); categorical cells one-hot, a missing
categorical cell as a category of its own. That is the design matrix of ``bench/anomaly.py``'s baselines
(mean imputation + one-hot): on the development tables it ranked better than skipping missing cells
(``nan_euclidean_distances``). A query row identical to a reference row (same cells, same missing pattern)
does not count that one match, so a training row's score is its distance to the k-th nearest *other* row,
and a new row scores like it.

Shape legend: ``N`` query rows, ``M`` reference rows, ``C`` columns. ``missing`` True = no observed value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

REFERENCE_ROWS = 10_000  # training rows kept as neighbours (a seeded sample of larger tables)
_QUERY_ROWS = 1024  # query rows per block of the (N, M) distance matrix
_SPARE = 3  # candidates beyond k ranked in float32 whose exact (float64) distances then decide


def check_neighbors(k, name: str = "neighbors") -> int:
    """``k`` of the neighbour term as an int, or a ``ValueError`` naming ``name``: an int >= 0 (a bool is not
    one); 0 = no neighbour term."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"{name} must be an int >= 0 (0 = no neighbour term), got {k!r}")
    return int(k)


@dataclass(frozen=True)
class Reference:
    """Reference rows: ``values`` float64 (M, C) standardised (0 where categorical or missing), ``categories``
    long (M, C), ``missing`` bool (M, C); ``cards`` long (C,): each column's number of categories (0 = a
    numeric column), as in the schema."""

    values: Tensor
    categories: Tensor
    missing: Tensor
    cards: Tensor

    @property
    def numeric(self) -> Tensor:
        return self.cards == 0  # (C,)

    def tensors(self) -> dict[str, Tensor]:
        return {"values": self.values, "categories": self.categories, "missing": self.missing, "cards": self.cards}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> Reference:
        return cls(tensors["values"].double(), tensors["categories"].long(), tensors["missing"].bool(),
                   tensors["cards"].long())  # fmt: skip


def one_hot(categories: Tensor, missing: Tensor, cards: Tensor) -> Tensor:
    """``(N, sum (K + 1))`` float64: one block of ``cards[j] + 1`` per categorical column, the last slot for a
    missing cell."""
    blocks = [torch.nn.functional.one_hot(torch.where(missing[:, j], int(cards[j]), categories[:, j]),
                                          int(cards[j]) + 1).double()
              for j in torch.nonzero(cards).flatten().tolist()]  # fmt: skip
    return torch.cat(blocks, 1) if blocks else torch.zeros(len(categories), 0, dtype=torch.float64)


def _design(values: Tensor, categories: Tensor, missing: Tensor, cards: Tensor) -> Tensor:
    """The rows as points ``(N, C + sum (K + 1))`` float64: numeric cells (0 where missing or categorical),
    then the one-hot blocks."""
    numeric = torch.where(missing | (cards > 0), 0.0, values.double())
    return torch.cat([numeric, one_hot(categories, missing, cards)], 1)


def _twins(query: Tensor, q_missing: Tensor, reference: Tensor, r_missing: Tensor) -> Tensor:
    """For each query row, the first reference row identical to it (same point, same missing cells), or -1.
    ``long (N,)``; exact comparison of the encoded bytes."""

    def keys(points: Tensor, missing: Tensor) -> list[bytes]:
        rows = np.ascontiguousarray(np.hstack([points.numpy(), missing.numpy().astype(np.float64)]))
        return [row.tobytes() for row in rows]

    first: dict[bytes, int] = {}
    for index, key in enumerate(keys(reference, r_missing)):
        first.setdefault(key, index)
    return torch.tensor([first.get(key, -1) for key in keys(query, q_missing)], dtype=torch.long)


def neighbor_distance(values: Tensor, categories: Tensor, missing: Tensor, reference: Reference, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Distance of each query row to its ``k``-th nearest reference row, and each cell's part of it.

    values / categories / missing: the query rows ``(N, C)`` as encoded. Returns ``distance (N,)`` float64 and
    ``parts (N, C)``: cell ``c``'s squared difference to that neighbour divided by the distance (0 when the
    distance is 0), so a row's parts sum to its distance. With fewer than ``k`` other reference rows the
    farthest one is taken; with none, the distance is NaN. Candidates are ranked in float32 (the ``(N, M)``
    matrix); the ``k + 3`` nearest are then re-measured in float64 and the k-th of those is taken."""
    numeric = reference.numeric
    cards = reference.cards
    q_all = _design(values, categories, missing, cards)  # (N, P)
    r_all = _design(reference.values, reference.categories, reference.missing, cards)  # (M, P)
    twins = _twins(q_all, missing, r_all, reference.missing)  # (N,) the query row itself, if in the reference
    r32 = r_all.float()
    r_sq = (r32**2).sum(1)  # (M,)
    distance = np.full(len(values), math.nan)
    parts = np.zeros(values.shape)
    n_ref = len(r_all)
    for start in range(0, len(values), _QUERY_ROWS):
        rows = slice(start, min(len(values), start + _QUERY_ROWS))
        q, twin = q_all[rows], twins[rows]
        q32 = q.float()
        squared = (q32**2).sum(1, keepdim=True) + r_sq[None, :] - 2.0 * q32 @ r32.T  # (n, M) float32
        has_twin = twin >= 0
        squared[has_twin, twin[has_twin]] = math.inf  # not its own neighbour
        usable = n_ref - has_twin.long()  # (n,) reference rows that count
        take = min(k + _SPARE, n_ref)
        if take == 0:
            continue
        candidates = torch.topk(squared, take, dim=1, largest=False).indices  # (n, take)
        exact = ((q[:, None, :] - r_all[candidates]) ** 2).sum(-1)  # (n, take) float64
        exact = torch.where(candidates == twin[:, None], math.inf, exact)
        exact, order = torch.sort(exact, dim=1, stable=True)
        position = (usable.clamp(1, min(k, take)) - 1)[:, None]  # the k-th, or the farthest usable one
        neighbor = candidates.gather(1, order.gather(1, position))[:, 0]  # (n,) reference row
        ok = usable > 0
        dist = exact.gather(1, position)[:, 0].sqrt()
        # Each cell's squared difference to that neighbour; parts = cell / distance (they sum to the distance).
        r_cat, r_miss = reference.categories[neighbor], reference.missing[neighbor]
        differs = ((categories[rows] != r_cat) | (missing[rows] != r_miss)) & ~(missing[rows] & r_miss)
        cell = torch.where(numeric, (q[:, : len(numeric)] - r_all[neighbor, : len(numeric)]) ** 2, 2.0 * differs)
        part = torch.where((dist > 0)[:, None], cell / dist.clamp_min(1e-300)[:, None], 0.0)
        distance[rows] = torch.where(ok, dist, math.nan).numpy()
        parts[rows] = torch.where(ok[:, None], part, 0.0).numpy()
    return distance, parts


def robust_scale(scores: np.ndarray) -> float:
    """The spread a score term is divided by before terms are added: its interquartile range over the
    training rows (falling back to the standard deviation, then 1, when that is 0); NaN scores are ignored."""
    finite = scores[np.isfinite(scores)]
    if len(finite) == 0:
        return 1.0
    low, high = np.percentile(finite, [25, 75])
    for spread in (high - low, finite.std()):
        if spread > 0:
            return float(spread)
    return 1.0
