"""masklab's PatchTST against Hugging Face ``PatchTSTForPretraining`` with copied (perturbed random) weights:
loss, predictions and gradients on full tensors, with a ``past_observed_mask`` that hides some values."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from masklab.data.series import SeriesBatch  # noqa: E402
from masklab.interop.hf.patchtst import config_from_hf, from_hf, hf_parameter_names  # noqa: E402

B, T, C = 3, 36, 2


def _hf_model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    fields = dict(
        num_input_channels=C, context_length=T, patch_length=6, patch_stride=6, num_hidden_layers=2, d_model=32,
        num_attention_heads=4, ffn_dim=64, norm_type="layernorm", random_mask_ratio=0.4, mask_type="random",
    )  # fmt: skip
    config = transformers.PatchTSTConfig(**{**fields, **overrides})
    model = transformers.PatchTSTForPretraining(config).eval()
    with torch.no_grad():  # perturb every weight so no default (ones, zeros) hides a mismatch
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _inputs(missing: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    values = torch.randn(B, T, C, generator=g) * 3 + torch.arange(C) * 5
    observed = torch.ones(B, T, C, dtype=torch.bool)
    if missing:
        observed = torch.rand(B, T, C, generator=g) > 0.2
        values = values.masked_fill(~observed, 0.0)  # HF: "NaNs that were replaced by zeros"
    return values, observed


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("mask_type", ["random", "forecast"])
def test_loss_predictions_and_gradients_match_hf(missing: bool, mask_type: str) -> None:
    hf = _hf_model(mask_type=mask_type, num_forecast_mask_patches=2)
    ours = from_hf(hf).eval()
    values, observed = _inputs(missing)

    hf_values = values.clone().requires_grad_(True)
    torch.manual_seed(7)  # HF draws its mask noise from the global generator
    out = hf(past_values=hf_values, past_observed_mask=observed.float())
    out.loss.backward()

    our_values = values.clone().requires_grad_(True)
    batch = SeriesBatch(our_values, torch.zeros(B, T, dtype=torch.bool), observed)
    inputs = ours.prepare(batch)
    masked = ours.sample_mask(inputs, torch.Generator().manual_seed(7))
    result = ours(batch, masked)
    result.loss.backward()

    assert masked.float().mean() > 0
    torch.testing.assert_close(result.pred, out.prediction_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(result.loss, out.loss, atol=1e-5, rtol=1e-5)
    hf_params = dict(hf.named_parameters())
    for name, param in ours.named_parameters():
        if name == "pos_embed":  # HF's sincos table is frozen (requires_grad=False)
            continue
        expected = torch.cat([hf_params[n].grad for n in hf_parameter_names(ours.config.depth)[name].split(",")])
        torch.testing.assert_close(param.grad, expected, atol=1e-5, rtol=1e-4, msg=name)
    # masklab never reads an unobserved value (its gradient is exactly 0); HF reads the zero placed there.
    torch.testing.assert_close(our_values.grad[observed], hf_values.grad[observed], atol=1e-5, rtol=1e-4)
    assert bool((our_values.grad[~observed] == 0).all())


def test_training_loss_replays_hf_mask_draw() -> None:
    hf = _hf_model()
    ours = from_hf(hf).eval()
    values, observed = _inputs(False)
    torch.manual_seed(3)
    expected = hf(past_values=values, past_observed_mask=observed.float()).loss
    batch = SeriesBatch(values, torch.zeros(B, T, dtype=torch.bool), observed)
    got = ours.training_loss(batch, torch.Generator().manual_seed(3)).loss
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("norm_type", "batchnorm"), ("use_cls_token", True), ("channel_attention", True), ("scaling", "mean")],
)
def test_unsupported_hf_options_are_refused_by_name(field: str, value: object) -> None:
    fields = dict(num_input_channels=C, context_length=T, patch_length=6, patch_stride=6, norm_type="layernorm")
    config = transformers.PatchTSTConfig(**{**fields, field: value})
    with pytest.raises(ValueError, match=field):
        config_from_hf(config)


def test_misaligned_context_is_refused() -> None:
    config = transformers.PatchTSTConfig(num_input_channels=C, context_length=T + 1, patch_length=6,
                                         patch_stride=6, norm_type="layernorm")  # fmt: skip
    with pytest.raises(ValueError, match="context_length"):
        config_from_hf(config)
