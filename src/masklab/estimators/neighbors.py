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
_SAME = 1e-9  # squared distance (standardised units) under which two rows with one missing pattern are "identical"


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


def neighbor_distance(values: Tensor, categories: Tensor, missing: Tensor, reference: Reference, k: int
                      ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Distance of each query row to its ``k``-th nearest reference row, and each cell's part of it.

    values / categories / missing: the query rows ``(N, C)`` as encoded. Returns ``distance (N,)`` float64 and
    ``parts (N, C)``: cell ``c``'s squared difference to that neighbour divided by the distance (0 when the
    distance is 0), so a row's parts sum to its distance. With fewer than ``k`` other reference rows the
    farthest one is taken; with none, the distance is NaN."""
    numeric = reference.numeric
    q_num = torch.where(missing | ~numeric, 0.0, values.double())  # (N, C) missing numeric cell = the mean (0)
    r_num = torch.where(reference.missing | ~numeric, 0.0, reference.values)  # (M, C)
    q_hot = one_hot(categories, missing, reference.cards)  # (N, H)
    r_hot = one_hot(reference.categories, reference.missing, reference.cards)  # (M, H)
    q_all, r_all = torch.cat([q_num, q_hot], 1), torch.cat([r_num, r_hot], 1)  # the design matrix
    q_miss, r_miss = missing.double(), reference.missing.double()
    r_sq = (r_all**2).sum(1)  # (M,)
    distance = np.full(len(values), math.nan)
    parts = np.zeros(values.shape)
    for start in range(0, len(values), _QUERY_ROWS):
        rows = slice(start, min(len(values), start + _QUERY_ROWS))
        q = q_all[rows]
        squared = ((q**2).sum(1, keepdim=True) + r_sq[None, :] - 2.0 * q @ r_all.T).clamp_min(0.0)  # (n, M)
        other_pattern = q_miss[rows] @ (1.0 - r_miss).T + (1.0 - q_miss[rows]) @ r_miss.T  # (n, M) cells differing
        identical = (other_pattern == 0) & (squared <= _SAME)
        first = identical.double().argmax(1)  # one identical reference row per query (if any) is not counted
        has_twin = identical.any(1)
        squared[has_twin, first[has_twin]] = math.inf
        usable = torch.isfinite(squared).sum(1)  # (n,)
        take = min(k, squared.shape[1])
        if take == 0:
            continue
        nearest, index = torch.topk(squared, take, dim=1, largest=False)  # (n, take) ascending
        position = (usable.clamp(1, take) - 1)[:, None]  # the k-th, or the farthest usable one
        neighbor = index.gather(1, position)[:, 0]  # (n,) reference row
        ok = usable > 0
        dist = nearest.gather(1, position)[:, 0].sqrt()
        # Each cell's squared difference to that neighbour; parts = cell / distance (they sum to the distance).
        differs = (categories[rows] != reference.categories[neighbor]) | (missing[rows] != reference.missing[neighbor])
        differs &= ~(missing[rows] & reference.missing[neighbor])  # two missing categories are the same slot
        cell = torch.where(numeric, (q_num[rows] - r_num[neighbor]) ** 2, 2.0 * differs.double())
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
