"""MAE model: config validation, masking semantics, loss on hidden patches only, norm-pix inversion, variants."""

import json

import pytest
import torch

from masklab.core.contract import saved_config
from masklab.data.images import ImageBatch
from masklab.models.mae import MAE, MAEConfig
from masklab.models.mae import PRESETS as MAE_PRESETS
from masklab.models.registry import build_model
from masklab.tokenizers.patches import patchify, pixel_mask_from_patches

TINY = dict(image_size=(8, 12), patch_size=4, channels=3, dim=32, depth=2, heads=2, decoder_dim=32,
            decoder_depth=1, decoder_heads=2, mlp_hidden=64, decoder_mlp_hidden=64)  # fmt: skip


def tiny(**overrides) -> MAE:
    torch.manual_seed(0)
    return MAE(MAEConfig(**{**TINY, **overrides})).eval()


def test_config_round_trips_through_json_and_registry():
    cfg = MAEConfig(**TINY, pixel_mean=(0.1, 0.2, 0.3), pixel_std=(1.0, 2.0, 3.0), norm_pix_loss=True)
    saved = json.loads(json.dumps(saved_config(MAE(cfg))))
    assert saved["kind"] == "mae"
    assert MAEConfig.from_dict(saved) == cfg  # the "kind" key of a run's config.json is ignored
    model = build_model({"kind": "mae", "model": saved})
    assert isinstance(model, MAE) and model.config == cfg


@pytest.mark.parametrize("ratio", [1.0, 1.5, -0.1])
def test_mask_ratio_out_of_range_is_a_clear_error(ratio):
    with pytest.raises(ValueError, match=r"mask ratio must be in \[0, 1\)"):
        MAEConfig(**{**TINY, "mask_ratio": ratio})


def test_mask_ratio_leaving_no_visible_patch_is_an_error():
    with pytest.raises(ValueError, match="keeps 0 of 6 patches visible"):
        MAEConfig(**{**TINY, "mask_ratio": 0.9})


def test_image_smaller_than_a_patch_is_an_error():
    with pytest.raises(ValueError, match="smaller than one 4x4 patch"):
        MAEConfig(**{**TINY, "image_size": (2, 8)})


def test_wrong_channel_count_and_size_are_errors():
    model = tiny()
    with pytest.raises(ValueError, match="takes 3-channel images, got 1"):
        model(torch.rand(2, 1, 8, 12))
    with pytest.raises(ValueError, match="takes 8x12 images, got 12x8"):
        model.encode(torch.rand(2, 3, 12, 8))


def test_unknown_config_field_is_an_error():
    with pytest.raises(ValueError, match="unknown MAEConfig fields"):
        MAEConfig.from_dict({**TINY, "dpeth": 3})


@pytest.mark.parametrize("variant", ["mae", "simmim"])
def test_prediction_does_not_depend_on_hidden_pixels(variant):
    model = tiny(variant=variant)
    images = torch.rand(3, 3, 8, 12)
    mask = model.sample_mask(3, generator=torch.Generator().manual_seed(1))
    hidden = pixel_mask_from_patches(mask.masked, 4, (2, 3))[:, None]  # (B, 1, H, W)
    changed = torch.where(hidden, torch.rand_like(images), images)
    with torch.no_grad():
        a, b = model(images, mask=mask), model(changed, mask=mask)
    torch.testing.assert_close(a.pred, b.pred, rtol=0, atol=0)
    assert torch.equal(a.masked, mask.masked)
    assert int(mask.masked.sum(1)[0]) == 6 - int(6 * 0.25)


def test_encoder_sees_only_visible_tokens():
    model = tiny()
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0))
    latent = model.forward_encoder(model.normalize(torch.rand(2, 3, 8, 12)), mask)
    assert latent.shape == (2, 1 + mask.ids_keep.shape[1], 32)  # CLS + visible


def test_loss_is_mse_on_hidden_patches_only_float64_reference():
    model = tiny(norm_pix_loss=True, pixel_mean=(0.5, 0.4, 0.3), pixel_std=(0.2, 0.3, 0.4)).double()
    images = torch.rand(4, 3, 8, 12, dtype=torch.float64)
    out = model(images, generator=torch.Generator().manual_seed(3))
    x = (images - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    target = patchify(x, 4)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((out.pred - target) ** 2).mean(-1)  # (B, L)
    expected = per_patch[out.masked].mean()
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_pixels_from_pred_inverts_the_targets(norm_pix):
    model = tiny(norm_pix_loss=norm_pix, pixel_mean=(0.5, 0.4, 0.3), pixel_std=(0.2, 0.3, 0.4)).double()
    images = torch.rand(2, 3, 8, 12, dtype=torch.float64)
    target = model.patch_targets(model.normalize(images))
    torch.testing.assert_close(model.pixels_from_pred(target, images), images)


def test_block_and_grid_masks_train():
    for kind, ratio, size in (("block", 0.75, (16, 16)), ("grid", 0.75, (16, 16))):
        model = tiny(mask_kind=kind, mask_ratio=ratio, image_size=size).train()
        gen = torch.Generator().manual_seed(0)
        out = model.training_loss(ImageBatch(torch.rand(4, 3, *size)), gen)
        out.loss.backward()
        assert torch.isfinite(out.loss)
        mask = model.sample_mask(4, generator=gen)
        assert mask.masked.sum(1).tolist() == [12] * 4  # 16 patches, 75% hidden


def test_grid_mask_ratio_must_fit_the_grid():
    with pytest.raises(ValueError, match="grid masking needs mask ratio 1 - 1/k"):
        MAEConfig(**{**TINY, "image_size": (16, 16), "mask_kind": "grid", "mask_ratio": 0.6})


def test_sdpa_and_reference_attention_give_the_same_loss():
    model = tiny()
    images = torch.rand(3, 3, 8, 12)
    mask = model.sample_mask(3, generator=torch.Generator().manual_seed(0))
    fused = model(images, mask=mask)
    model.encoder.set_backend("reference")
    model.decoder.set_backend("reference")
    ref = model(images, mask=mask)
    torch.testing.assert_close(fused.pred, ref.pred, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.loss, ref.loss, rtol=1e-5, atol=1e-6)


def test_inference_is_deterministic_and_unmasked():
    model = tiny()
    images = torch.rand(2, 3, 8, 12)
    a, b = model.encode(images), model.encode(images)
    assert a.shape == (2, 1 + 6, 32)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert model.embed(images).shape == (2, 32)


def test_classifier_objective():
    model = tiny(objective="classify", num_classes=5, mask_ratio=0.5).train()
    assert not hasattr(model, "decoder")
    batch = ImageBatch(torch.rand(4, 3, 8, 12), torch.tensor([0, 1, 2, 4]))
    out = model.training_loss(batch, torch.Generator().manual_seed(0))
    out.loss.backward()
    assert "accuracy" in out.metrics and model.logits(batch.images).shape == (4, 5)
    with pytest.raises(ValueError, match="needs labelled data"):
        model.training_loss(ImageBatch(batch.images), torch.Generator())


@pytest.mark.parametrize("name", list(MAE_PRESETS))
def test_presets_build(name):
    cfg = MAE.from_preset(name, channels=3).config
    assert cfg.num_patches >= 16
    if name == "mae-tiny":
        assert sum(p.numel() for p in MAE(cfg).parameters()) < 100_000
