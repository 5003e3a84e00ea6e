"""The affine epoch order of huge datasets is computed exactly (``i * a`` overflowed int64 above ~3e9 examples,
so some examples were visited twice in an epoch and others never), and unchanged where it did not overflow."""

from __future__ import annotations

import torch

from masklab.train import batches
from masklab.train.batches import EpochSampler, affine_positions


def _exact(positions: list[int], a: int, b: int, n: int) -> list[int]:
    return [(i * a + b) % n for i in positions]


def test_huge_dataset_matches_python_ints() -> None:
    for n in (20_000_000_000, 3_037_000_500, 2**45 + 17, 2**55 - 3):
        s = EpochSampler(n, 0)
        for epoch in (0, 1, 7):
            a, b = s._affine(epoch)
            for start in (0, n // 3, n // 2 + 1, n - 8):
                got = s._slice(epoch, start, start + 8).tolist()
                assert got == _exact(list(range(start, start + 8)), a, b, n), (n, epoch, start)


def test_reported_collision_is_gone() -> None:
    n = 20_000_000_000
    s = EpochSampler(n, 0)
    first = s._slice(0, 2352777619, 2352777620).item()
    second = s._slice(0, 15369363859, 15369363860).item()
    assert first != second


def test_chunked_arithmetic_is_a_bijection() -> None:
    n = 100_003
    for a, b in ((1, 0), (99_991, 12_345), (65_537, n - 1), (n - 1, 3)):
        out = affine_positions(0, n, a, b, n, chunk_bits=5)  # force the overflow-safe path on a small n
        assert out.tolist() == _exact(list(range(n)), a, b, n)
        assert torch.unique(out).numel() == n


def test_small_datasets_keep_their_order(monkeypatch) -> None:
    # Below the overflow bound the order is the one earlier runs used (so resumed runs continue identically).
    monkeypatch.setattr(batches, "MAX_MATERIALISED", 10)
    n = 1_000_003
    s = EpochSampler(n, 3)
    a, b = s._affine(0)
    expected = (torch.arange(0, n, dtype=torch.long) * a + b) % n
    assert torch.equal(s._slice(0, 0, n), expected)
