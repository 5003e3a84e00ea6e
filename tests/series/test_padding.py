"""Padded time steps are invisible (the Keras ``Masking`` semantics): a series padded to any length gives the
same loss, embedding, logits, forecast, imputation and anomaly scores as the series alone, on every model path,
and the gradient with respect to a padded step is exactly zero.

The comparisons run in float64, where 1e-6 tests the semantics rather than float32 rounding (a padded batch
has more rows, so its GEMMs may take another kernel and round differently; that is checked to 1e-5 in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklab.data.series import SeriesBatch, collate
from masklab.models.series import PatchTST, SeriesClassifier, from_preset
from masklab.models.series.tasks import anomaly_scores, forecast, impute

C = 3
ATOL = 1e-6
DTYPE = torch.float64


def _series(length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=(length, C)), axis=0).astype(np.float32) + np.arange(C) * 10
    x[rng.random((length, C)) < 0.15] = np.nan  # not observed
    return x


def _padded(x: np.ndarray, length: int) -> SeriesBatch:
    """``x`` padded to ``length`` with garbage (large random values, marked observed) in the padded steps."""
    batch = collate([x], length=length)
    garbage = torch.randn(batch.values.shape, generator=torch.Generator().manual_seed(9)) * 1e3
    pad = batch.padding[..., None]
    values = torch.where(pad, garbage, batch.values).to(DTYPE).requires_grad_(True)
    return SeriesBatch(values, batch.padding, batch.observed | pad, batch.labels)


def _unpadded(x: np.ndarray) -> SeriesBatch:
    batch = collate([x])
    return SeriesBatch(batch.values.to(DTYPE).requires_grad_(True), batch.padding, batch.observed)


CONFIGS = {
    "non-overlapping": dict(patch_len=4, stride=4),
    "overlapping": dict(patch_len=4, stride=2),
    # the options of issue 20's accuracy work: mean+max pooling, statistics of visible steps, channel mixing
    "mean-max, visible-step statistics": dict(patch_len=4, stride=4, pool="mean-max", norm_visible=True),
    "channel mixing": dict(patch_len=4, stride=2, channel_mixing=True, pool="mean-max", norm_visible=True),
    "channel mixing, statistics in the tokens": dict(patch_len=2, stride=2, channel_mixing=True, stats_input=True),
    "statistics in the tokens": dict(patch_len=4, stride=4, stats_input=True, norm_visible=True),
    # asinh-compressed input (issue 20, PLAID), with and without instance normalisation after it
    "asinh input": dict(
        patch_len=4, stride=2, channel_mixing=True, scaling=False, input_transform="asinh", input_scale=3.0
    ),
    "asinh input, normalised": dict(patch_len=4, stride=4, input_transform="asinh", input_scale=0.5),
}


def _model(name: str, mask_kind: str = "random") -> PatchTST:
    torch.manual_seed(0)
    model = PatchTST(from_preset("series-tiny", channels=C, mask_kind=mask_kind, **CONFIGS[name]))
    return model.to(DTYPE).eval()


def _assert_zero_padded_grad(batch: SeriesBatch) -> None:
    grad = batch.values.grad
    assert grad is not None
    assert bool((grad[batch.padding] == 0).all()), "a padded step received gradient"
    assert bool((grad[~batch.padding] != 0).any()), "no gradient reached the real steps (test is vacuous)"


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("mask_kind", ["random", "tail", "mixed"])
@pytest.mark.parametrize("length", [13, 16])
def test_training_loss_ignores_padding(config: str, mask_kind: str, length: int) -> None:
    model = _model(config, mask_kind)
    x = _series(length, 1)
    a, b = _unpadded(x), _padded(x, 41)
    loss_a = model.training_loss(a, torch.Generator().manual_seed(5)).loss
    loss_b = model.training_loss(b, torch.Generator().manual_seed(5)).loss
    torch.testing.assert_close(loss_b, loss_a, atol=ATOL, rtol=0)
    loss_b.backward()
    _assert_zero_padded_grad(b)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_embedding_and_classifier_ignore_padding(config: str) -> None:
    torch.manual_seed(0)
    classifier = SeriesClassifier(from_preset("series-tiny", channels=C, **CONFIGS[config]), num_classes=3)
    classifier = classifier.to(DTYPE).eval()
    x = _series(11, 2)
    a, b = _unpadded(x), _padded(x, 37)
    torch.testing.assert_close(classifier.backbone.embed(b), classifier.backbone.embed(a), atol=ATOL, rtol=0)
    a.labels = b.labels = torch.tensor([2])
    loss_a = classifier.training_loss(a, torch.Generator()).loss
    loss_b = classifier.training_loss(b, torch.Generator()).loss
    torch.testing.assert_close(loss_b, loss_a, atol=ATOL, rtol=0)
    loss_b.backward()
    _assert_zero_padded_grad(b)


@pytest.mark.parametrize("config", ["overlapping", "channel mixing", "asinh input", "asinh input, normalised"])
def test_reconstruction_gradient_is_zero_on_padded_steps(config: str) -> None:
    model = _model(config)
    x = _series(10, 3)
    a, b = _unpadded(x), _padded(x, 23)
    masked_a = model.sample_mask(model.prepare(a), torch.Generator().manual_seed(1))
    masked_b = model.sample_mask(model.prepare(b), torch.Generator().manual_seed(1))
    torch.testing.assert_close(masked_b[..., : masked_a.shape[-1]], masked_a)
    assert not bool(masked_b[..., masked_a.shape[-1] :].any()), "a padded patch was hidden"
    rec_a, rec_b = model.reconstruct(a, masked_a), model.reconstruct(b, masked_b)
    torch.testing.assert_close(rec_b[:, :10], rec_a, atol=ATOL, rtol=0)
    rec_b[:, :10].sum().backward()
    _assert_zero_padded_grad(b)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_forecast_impute_and_anomaly_scores_ignore_padding(config: str) -> None:
    model = _model(config)
    x = _series(14, 4)
    a, b = _unpadded(x), _padded(x, 33)
    torch.testing.assert_close(forecast(model, b, 5), forecast(model, a, 5), atol=ATOL, rtol=0)
    filled_a, filled_b = impute(model, a), impute(model, b)
    torch.testing.assert_close(filled_b[:, :14], filled_a, atol=ATOL, rtol=0)
    assert bool(filled_b[:, 14:].isnan().all()) and not bool(filled_a.isnan().any())
    sa, sb = anomaly_scores(model, a), anomaly_scores(model, b)
    torch.testing.assert_close(sb.per_step[:, :14], sa.per_step, atol=ATOL, rtol=1e-6, equal_nan=True)
    assert bool(sb.per_step[:, 14:].isnan().all())
    torch.testing.assert_close(sb.per_series, sa.per_series, atol=ATOL, rtol=1e-6)


@pytest.mark.parametrize("config", ["non-overlapping", "channel mixing"])
def test_a_mixed_length_batch_embeds_each_series_as_alone(config: str) -> None:
    model = _model(config)
    series = [_series(n, 10 + n) for n in (5, 17, 9, 30)]

    def embed(batch: SeriesBatch) -> torch.Tensor:
        return model.embed(SeriesBatch(batch.values.to(DTYPE), batch.padding, batch.observed))

    together = embed(collate(series))
    alone = torch.cat([embed(collate([s])) for s in series])
    torch.testing.assert_close(together, alone, atol=ATOL, rtol=0)


def test_float32_padding_differs_only_by_rounding() -> None:
    torch.manual_seed(0)
    model = PatchTST(from_preset("series-tiny", channels=C)).eval()
    x = _series(11, 2)
    a = collate([x])
    b = _padded(x, 37)
    b = SeriesBatch(b.values.detach().float(), b.padding, b.observed)
    torch.testing.assert_close(model.embed(b), model.embed(a), atol=1e-5, rtol=1e-5)


def test_normalisation_uses_only_real_observed_steps() -> None:
    model = _model("non-overlapping")
    x = _series(12, 5)
    inputs = model.prepare(_padded(x, 20))
    expected_loc = np.nanmean(x, axis=0)
    expected_scale = np.sqrt(np.nanvar(x, axis=0) + model.config.min_scale)
    np.testing.assert_allclose(inputs.norm.loc[0, 0].detach().numpy(), expected_loc, rtol=1e-5)
    np.testing.assert_allclose(inputs.norm.scale[0, 0].detach().numpy(), expected_scale, rtol=1e-5)
