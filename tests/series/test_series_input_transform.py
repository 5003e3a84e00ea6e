"""``SeriesConfig.input_transform="asinh"``: the model sees ``asinh(x / input_scale)``, the same as the
original model fed the transformed values, and maps its reconstructions back to the data's units with
``sinh``. Compared in float64 against the untransformed model on pre-transformed data (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklab.data.series import SeriesBatch, collate
from masklab.models.series import PatchTST, SeriesConfig, from_preset
from masklab.models.series.tasks import forecast, impute

SCALE = 0.3


def _data(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for n, amp in ((12, 0.01), (17, 40.0), (9, 1.0)):  # amplitudes over four orders of magnitude
        x = (amp * np.cumsum(rng.normal(size=(n, 2)), axis=0)).astype(np.float64)
        x[rng.random((n, 2)) < 0.1] = np.nan
        out.append(x)
    return out


def _batch(series: list[np.ndarray]) -> SeriesBatch:
    b = collate(series)
    return SeriesBatch(b.values.double(), b.padding, b.observed)


def _pair(**overrides: object) -> tuple[PatchTST, PatchTST]:
    """The asinh model and the original one with the same weights."""
    config = from_preset("series-tiny", channels=2, patch_len=4, stride=4, **overrides)
    plain = PatchTST(config).double().eval()
    asinh = PatchTST(SeriesConfig.from_dict({**config.to_dict(), "input_transform": "asinh",
                                             "input_scale": SCALE})).double().eval()  # fmt: skip
    asinh.load_state_dict(plain.state_dict())
    return asinh, plain


@pytest.mark.parametrize("scaling", [True, False])
def test_asinh_model_equals_the_plain_model_on_transformed_values(scaling: bool) -> None:
    torch.manual_seed(0)
    asinh, plain = _pair(scaling=scaling, channel_mixing=not scaling)
    a = _batch(_data())
    p = SeriesBatch(torch.asinh(a.values / SCALE), a.padding, a.observed)  # float64 reference input
    torch.testing.assert_close(asinh.embed(a), plain.embed(p), atol=1e-10, rtol=0)
    loss_a = asinh.training_loss(a, torch.Generator().manual_seed(2)).loss
    loss_p = plain.training_loss(p, torch.Generator().manual_seed(2)).loss
    torch.testing.assert_close(loss_a, loss_p, atol=1e-10, rtol=0)
    masked = asinh.sample_mask(asinh.prepare(a), torch.Generator().manual_seed(4))
    expected = torch.sinh(plain.reconstruct(p, masked)) * SCALE  # back in the data's units
    torch.testing.assert_close(asinh.reconstruct(a, masked), expected, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(forecast(asinh, a, 3), torch.sinh(forecast(plain, p, 3)) * SCALE,
                               atol=1e-10, rtol=1e-10)  # fmt: skip


def test_impute_keeps_observed_values_in_the_data_units() -> None:
    torch.manual_seed(0)
    asinh, _ = _pair()
    series = _data(1)
    batch = _batch(series)
    filled = impute(asinh, batch)
    seen = batch.observed & ~batch.padding[..., None]
    torch.testing.assert_close(filled[seen], batch.values[seen])
    assert not bool(filled[~batch.padding].isnan().any())


def test_default_is_no_transform_and_bad_values_are_named() -> None:
    config = from_preset("series-tiny", channels=1)
    assert (config.input_transform, config.input_scale) == ("none", 1.0)
    with pytest.raises(ValueError, match="input_transform"):
        from_preset("series-tiny", channels=1, input_transform="log")
    for bad in (0.0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="input_scale"):
            from_preset("series-tiny", channels=1, input_scale=bad)
