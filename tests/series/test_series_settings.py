"""The documented rules behind the series benchmark's settings (``classifier_overrides``, ``classifier_augment``,
``forecast_overrides``)."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.data.series import SeriesSet
from masklab.data.series_augment import SeriesAugment
from masklab.models.series import from_preset
from masklab.recipes.series import classifier_augment, classifier_overrides, forecast_overrides


def _set(lengths: list[int], scales: list[float]) -> SeriesSet:
    rng = np.random.default_rng(0)
    pairs = zip(lengths, scales, strict=True)
    return SeriesSet([(rng.normal(size=(n, 2)) * s).astype(np.float32) for n, s in pairs], "t")


@pytest.mark.parametrize(("median", "patch"), [(15, 1), (40, 1), (64, 2), (300, 8), (5000, 16)])
def test_patch_length_gives_the_median_series_32_patches(median: int, patch: int) -> None:
    settings = classifier_overrides(_set([median // 2, median, median * 2], [1.0, 1.0, 1.0]))
    assert settings["patch_len"] == settings["stride"] == patch
    assert settings["channel_mixing"] is True


def test_scaling_only_when_series_scales_differ_by_an_order_of_magnitude() -> None:
    similar = _set([20] * 10, list(np.linspace(0.5, 1.5, 10)))
    spread = _set([20] * 10, list(np.logspace(-2, 2, 10)))
    assert classifier_overrides(similar)["scaling"] is False
    assert classifier_overrides(spread)["scaling"] is True


def test_spread_scales_are_asinh_compressed_at_the_median_scale() -> None:
    similar = _set([20] * 10, list(np.linspace(0.5, 1.5, 10)))
    assert "input_transform" not in classifier_overrides(similar)  # the original model: raw values
    scales = list(np.logspace(-3, 3, 9))
    settings = classifier_overrides(_set([400] * 9, scales))
    assert settings["input_transform"] == "asinh"
    stds = [np.std(s.astype(np.float64), axis=0) for s in _set([400] * 9, scales).series]
    assert settings["input_scale"] == pytest.approx(float(np.median(stds)))
    assert 0.5 < settings["input_scale"] < 2.0  # the median of 1e-3..1e3 (the middle series has scale 1)


def test_forecast_settings_hide_the_horizon() -> None:
    settings = forecast_overrides(26)
    assert settings == dict(patch_len=13, stride=13, mask_kind="tail", tail_patches=2, norm_visible=True)
    assert forecast_overrides(3)["tail_patches"] * forecast_overrides(3)["patch_len"] >= 3


@pytest.mark.parametrize(("patch", "shift"), [(1, 0), (2, 1), (8, 7)])
def test_fine_tuning_shifts_series_by_less_than_a_patch(patch: int, shift: int) -> None:
    augment = classifier_augment(from_preset("series-tiny", channels=2, patch_len=patch, stride=patch))
    assert augment == SeriesAugment(shift=shift)
    assert augment.enabled is (shift > 0)  # one-step patches (JapaneseVowels): no augmentation at all
