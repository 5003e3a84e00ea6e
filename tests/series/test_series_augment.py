"""Series augmentation (the library's shift and the bench's rejected variants): each transform checked against
its definition on full arrays; NaN stays missing; the padded batch follows the augmented lengths (padded steps
are never filled); draws are reproducible."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklab.data.series import SeriesSet, SeriesTrainData
from masklab.data.series_augment import SeriesAugment

_path = Path(__file__).parents[2] / "bench" / "series_augment_variants.py"
_spec = importlib.util.spec_from_file_location("series_augment_variants", _path)
assert _spec is not None and _spec.loader is not None
_variants = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _variants  # dataclasses look their module up while building the class
_spec.loader.exec_module(_variants)
AugmentVariant = _variants.AugmentVariant


def _series(n: int = 40, channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    s = rng.normal(size=(n, channels)).astype(np.float32)
    s[5, 1] = np.nan
    return s


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_off_is_the_identity_and_training_data_ignores_it() -> None:
    s = _series()
    assert not SeriesAugment().enabled
    np.testing.assert_array_equal(SeriesAugment()(s, _gen()), s)
    data = SeriesSet([s, s[:7]], "toy", np.array([0, 1]), ("a", "b"))
    assert SeriesTrainData(data, augment=SeriesAugment()).augment is None


def test_crop_is_a_window_of_the_series() -> None:
    s = _series()
    augment = AugmentVariant(crop=0.5)
    g = _gen()
    lengths = set()
    for _ in range(50):
        out = augment(s, g)
        assert 20 <= len(out) <= 40
        starts = [i for i in range(len(s) - len(out) + 1) if np.array_equal(s[i : i + len(out)], out, equal_nan=True)]
        assert starts, "a crop must be consecutive steps of the input"
        lengths.add(len(out))
    assert len(lengths) > 5  # the window length is drawn, not fixed
    short = _series(6)
    np.testing.assert_array_equal(AugmentVariant(crop=0.1, min_length=8)(short, _gen()), short)  # too short: kept


def test_scale_multiplies_every_observed_step_by_one_factor() -> None:
    s = _series()
    out = AugmentVariant(scale=0.3)(s, _gen(3))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(s))
    ratio = out[~np.isnan(s)] / s[~np.isnan(s)]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-5)
    assert not math.isclose(float(ratio[0]), 1.0)


def test_stretch_matches_linear_interpolation() -> None:
    s = _series()
    s[5, 1] = 0.0  # the reference below has no NaN handling
    out = AugmentVariant(stretch=0.5)(s, _gen(1))
    assert 27 <= len(out) <= 60 and len(out) != len(s)
    grid = np.linspace(0, 1, len(out))
    ref = np.stack([np.interp(grid, np.linspace(0, 1, len(s)), s[:, c].astype(np.float64)) for c in range(2)], 1)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_stretch_keeps_missing_values_missing() -> None:
    s = _series()
    out = AugmentVariant(stretch=0.5)(s, _gen(1))
    assert np.isnan(out[:, 1]).any() and not np.isnan(out[:, 0]).any()


def test_batch_padding_follows_the_augmented_lengths_and_draws_repeat() -> None:
    rng = np.random.default_rng(1)
    series = [rng.normal(size=(n, 2)).astype(np.float32) for n in (30, 12, 50)]
    data = SeriesSet(series, "toy", np.array([0, 1, 0]), ("a", "b"))
    rows = SeriesTrainData(data, with_labels=True, augment=SeriesAugment(shift=20))
    idx = torch.arange(3)
    batch = rows.get_batch(idx, _gen(7))
    again = rows.get_batch(idx, _gen(7))
    assert torch.equal(batch.values, again.values) and torch.equal(batch.padding, again.padding)
    lengths = (~batch.padding).sum(dim=1)
    assert not torch.equal(lengths, torch.tensor([30, 12, 50]))
    for i, n in enumerate(lengths.tolist()):
        assert not batch.padding[i, :n].any() and batch.padding[i, n:].all()
        assert (batch.values[i, n:] == 0).all() and not batch.observed[i, n:].any()
    assert batch.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize("kwargs", [dict(shift=-1), dict(shift=1.5), dict(shift=True), dict(min_length=0)])
def test_bad_settings_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=f"SeriesAugment.{next(iter(kwargs))}"):
        SeriesAugment(**kwargs)


BAD_VARIANTS = [dict(crop=0.0), dict(crop=1.5), dict(stretch=-0.1), dict(stretch=1.0), dict(scale=-1.0),
                dict(scale=float("nan"))]  # fmt: skip


@pytest.mark.parametrize("kwargs", BAD_VARIANTS)
def test_bad_variant_settings_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AugmentVariant(**kwargs)


def test_shift_drops_leading_steps_only() -> None:
    s = _series()
    augment = SeriesAugment(shift=4)
    g = _gen()
    dropped = set()
    for _ in range(40):
        out = augment(s, g)
        k = len(s) - len(out)
        np.testing.assert_array_equal(out, s[k:])
        dropped.add(k)
    assert dropped == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(SeriesAugment(shift=4, min_length=8)(s[:8], _gen()), s[:8])  # too short: kept
