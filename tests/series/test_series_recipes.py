"""Recipes on a tiny untrained model: shapes, input order, observed values passed through, LP-FT head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklab.data.series import SeriesSet
from masklab.recipes import series as recipes


def _data(n: int = 7) -> SeriesSet:
    rng = np.random.default_rng(0)
    series = [rng.normal(size=(int(t), 2)).astype(np.float32) for t in rng.integers(5, 30, size=n)]
    series[2][3:6, 1] = np.nan
    return SeriesSet(series, "toy", np.arange(n) % 3, ("a", "b", "c"))


def _model(data: SeriesSet):
    return recipes.build_model(data, "series-tiny", seed=0, patch_len=4, stride=4).eval()


def test_inference_keeps_input_order_and_observed_values() -> None:
    data = _data()
    model = _model(data)
    feats = recipes.embed(model, data, batch_size=3)
    alone = np.concatenate([recipes.embed(model, data.subset([i])) for i in range(len(data))])
    np.testing.assert_allclose(feats, alone, atol=1e-5)
    filled = recipes.impute(model, data, batch_size=3)
    for s, f in zip(data.series, filled, strict=True):
        assert f.shape == s.shape and not np.isnan(f).any()
        np.testing.assert_array_equal(f[~np.isnan(s)], s[~np.isnan(s)])
    assert [f.shape for f in recipes.forecast(model, data, 6)] == [(6, 2)] * len(data)
    per_series, per_step = recipes.anomaly_scores(model, data)
    assert per_series.shape == (7,) and [len(p) for p in per_step] == list(data.lengths)
    assert np.isfinite(per_series).all()


def test_hide_and_reconstruct_hides_whole_patches_within_each_series() -> None:
    data = _data()
    model = _model(data)
    hidden, recon = recipes.hide_and_reconstruct(model, data, seed=3)
    assert [h.shape for h in hidden] == [r.shape for r in recon] == [s.shape for s in data.series]
    for h in hidden:
        steps = h[:, 0]
        patches = np.pad(steps, (0, -len(steps) % 4)).reshape(-1, 4)  # patch_len 4 = stride
        last = len(steps) % 4 or 4  # a last partial patch holds only its real steps
        assert all(
            row[: (last if k == len(patches) - 1 else 4)].all() or not row.any() for k, row in enumerate(patches)
        )
    again = recipes.hide_and_reconstruct(model, data, seed=3)
    for a, b in zip(again[1], recon, strict=True):
        np.testing.assert_array_equal(a, b)  # seeded
    tail, _ = recipes.hide_and_reconstruct(model, data, masking="tail")
    assert all(h[-1].all() and not h[0].any() for h in tail if len(h) > 8)  # forecasting hides the end


@pytest.mark.slow
def test_finetune_starts_from_the_probe() -> None:
    data = _data(30)
    model = _model(data)
    cfg = recipes.train_config(steps=1, minutes=None, batch_size=8, lr=0.0, seed=0, device="cpu")
    classifier = recipes.finetune_classify(model, data, num_classes=3, config=cfg, head_dropout=0.0)
    from sklearn.linear_model import LogisticRegression

    x = recipes.embed(model, data).astype(np.float64)
    scale = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    probe = LogisticRegression(max_iter=1000, random_state=0).fit((x - x.mean(axis=0)) / scale, data.labels)
    np.testing.assert_array_equal(recipes.predict_classes(classifier, data), probe.predict((x - x.mean(0)) / scale))
    assert torch.equal(classifier.backbone.patch_embed.weight, model.patch_embed.weight)  # lr 0: unchanged


@pytest.mark.slow
def test_finetune_with_augmentation_trains_on_shifted_series() -> None:
    from masklab.data.series_augment import SeriesAugment

    data = _data(30)
    model = _model(data)
    cfg = recipes.train_config(steps=3, minutes=None, batch_size=8, lr=1e-3, seed=0, device="cpu")
    plain = recipes.finetune_classify(model, data, num_classes=3, config=cfg)
    shifted = recipes.finetune_classify(model, data, num_classes=3, config=cfg, augment=SeriesAugment(shift=3))
    assert recipes.predict_proba(shifted, data).shape == (30, 3)
    # same seed, same batches: only the shifted inputs differ, so the trained weights do
    assert not torch.equal(plain.backbone.patch_embed.weight, shifted.backbone.patch_embed.weight)
    again = recipes.finetune_classify(model, data, num_classes=3, config=cfg, augment=SeriesAugment(shift=3))
    assert torch.equal(again.backbone.patch_embed.weight, shifted.backbone.patch_embed.weight)  # reproducible
