"""Segmentation head on an MAE encoder: config round trip, frozen encoder, and a trivially separable set."""

import dataclasses

import pytest
import torch

from masklab.data.pixel_masks import SegmentationDataset
from masklab.models.mae import MAE, MAEConfig
from masklab.models.registry import build_model
from masklab.models.segment import SegmentConfig, Segmenter
from masklab.models.segment.model import foreground_iou

ENCODER = MAEConfig(image_size=(16, 16), patch_size=4, channels=3, dim=32, depth=2, heads=2, decoder_dim=32,
                    decoder_depth=1, decoder_heads=2, mlp_hidden=64, decoder_mlp_hidden=64)  # fmt: skip


def separable(n: int, seed: int) -> SegmentationDataset:
    """Bright rectangles (the subject) on a dark noisy background: one threshold separates them."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.zeros(n, 16, 16, dtype=torch.uint8)
    for i in range(n):
        y0, x0 = torch.randint(0, 10, (2,), generator=g).tolist()
        h, w = torch.randint(3, 7, (2,), generator=g).tolist()
        targets[i, y0 : y0 + h, x0 : x0 + w] = 1
    noise = torch.rand(n, 3, 16, 16, generator=g) * 0.2
    pixels = ((0.1 + 0.7 * targets[:, None].float() + noise) * 255).round().to(torch.uint8)
    return SegmentationDataset(pixels, targets, name="separable")


def test_config_round_trip_and_presets():
    config = SegmentConfig.from_preset("finetune", encoder=ENCODER.to_dict(), num_classes=3)
    assert config.freeze_encoder is False and config.head_dim == 32 and config.decoder == "unet"
    assert SegmentConfig.from_dict(config.to_dict()) == config
    model = build_model({"kind": "segment", "model": config.to_dict()})
    assert isinstance(model, Segmenter) and model(torch.rand(2, 3, 16, 16)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="unknown segment preset"):
        SegmentConfig.from_preset("nope", encoder=ENCODER.to_dict())
    with pytest.raises(ValueError, match="num_classes"):
        SegmentConfig(encoder=ENCODER.to_dict(), num_classes=1)
    with pytest.raises(ValueError, match="unknown SegmentConfig fields"):
        SegmentConfig.from_dict({**config.to_dict(), "extra": 1})


def test_foreground_iou_by_hand():
    pred = torch.tensor([[[0, 1, 1, 0]]])
    target = torch.tensor([[[0, 1, 0, 2]]])
    assert foreground_iou(pred, target).item() == pytest.approx(1 / 3)
    assert foreground_iou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == 1.0


def test_probe_keeps_the_pretrained_encoder_fixed(gen):
    torch.manual_seed(0)
    mae = MAE(ENCODER)
    seg = Segmenter(SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict())).load_encoder(mae)
    before = {k: v.clone() for k, v in seg.mae.state_dict().items()}
    opt = torch.optim.AdamW([p for p in seg.parameters() if p.requires_grad], lr=1e-2)
    data = separable(8, 0)
    seg.train()
    for _ in range(3):
        loss = seg.training_loss(data.get_batch(torch.arange(8), gen), gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(before[k], v) for k, v in seg.mae.state_dict().items())
    assert all(torch.equal(mae.state_dict()[k], v) for k, v in seg.mae.state_dict().items())
    assert not seg.mae.training  # a probe keeps the encoder in eval mode


@pytest.mark.slow  # the conv decoder at full resolution: ~10 s per preset on an idle core, 90 s under load
@pytest.mark.parametrize("preset", ["probe", "finetune"])
def test_head_learns_a_trivially_separable_set(preset, gen):
    torch.manual_seed(0)
    config = dataclasses.replace(SegmentConfig.from_preset(preset, encoder=ENCODER.to_dict()))
    seg = Segmenter(config)
    train, test = separable(256, 1), separable(64, 2)
    lr = 1e-2 if preset == "probe" else 3e-3  # a probe trains only the small head: a larger step is stable
    opt = torch.optim.AdamW([p for p in seg.parameters() if p.requires_grad], lr=lr)
    seg.train()
    for _ in range(100):
        idx = torch.randint(0, len(train), (32,), generator=gen)
        loss = seg.training_loss(train.get_batch(idx, gen), gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    seg.eval()
    pred = seg.predict(test.images())
    assert foreground_iou(pred, test.targets.long()).item() > 0.95
    boxed = seg.predict(test.images()[:1], box=(0, 0, 8, 8))
    assert not boxed[:, 8:].any() and not boxed[:, :, 8:].any()


def test_cached_tokens_give_the_same_batches_and_loss():
    from masklab.recipes.segment import CachedTokens

    torch.manual_seed(0)
    seg = Segmenter(SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict()))
    data = separable(6, 3).with_flip(True)
    cached = CachedTokens(seg, data)
    idx = torch.tensor([0, 2, 5, 1])
    plain = data.get_batch(idx, torch.Generator().manual_seed(7))
    fast = cached.get_batch(idx, torch.Generator().manual_seed(7))
    assert torch.equal(plain.images, fast.images) and torch.equal(plain.targets, fast.targets)
    torch.testing.assert_close(fast.tokens, seg.encode(plain.images))
    g = torch.Generator()
    torch.testing.assert_close(seg.training_loss(fast, g).loss, seg.training_loss(plain, g).loss)


def test_soft_dice_loss_by_hand():
    from masklab.models.segment.heads import soft_dice_loss

    # Two pixels, binary: subject probabilities 0.5 and 0.5 (zero logits), targets [1, 0].
    logits = torch.zeros(1, 2, 1, 2)
    targets = torch.tensor([[[1, 0]]])
    # inter = 0.5, total = (0.5 + 0.5) + 1 = 2 -> dice (2 * 0.5 + 1) / (2 + 1) = 2/3 -> loss 1/3
    assert soft_dice_loss(logits, targets).item() == pytest.approx(1 / 3)
    sure = torch.tensor([[[[-20.0, 20.0]], [[20.0, -20.0]]]])  # (1, 2, 1, 2): class 1 at pixel 0
    assert soft_dice_loss(sure, targets).item() == pytest.approx(0.0, abs=1e-6)


def test_layers_concatenate_block_outputs():
    torch.manual_seed(0)
    mae = MAE(ENCODER).eval()
    one = Segmenter(SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict())).load_encoder(mae)
    two = Segmenter(SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict(), layers=2)).load_encoder(mae)
    images = torch.rand(3, 3, 16, 16)
    tokens = two.encode(images)
    assert tokens.shape == (3, 16, 2 * ENCODER.dim)
    torch.testing.assert_close(tokens[..., ENCODER.dim :], one.encode(images))  # the last block, final norm
    x = mae.encoder_input(mae.normalize(images))
    torch.testing.assert_close(tokens[..., : ENCODER.dim], mae.encoder.blocks[0](x)[:, 1:])
    assert two(images).shape == (3, 2, 16, 16)
    with pytest.raises(ValueError, match="layers must be in"):
        SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict(), layers=3)
    with pytest.raises(ValueError, match="decoder must be one of"):
        SegmentConfig.from_preset("probe", encoder=ENCODER.to_dict(), decoder="nope")


def test_a_config_saved_before_the_conv_decoder_rebuilds_the_pixel_mlp_head():
    from masklab.models.mae import MAE
    from masklab.models.segment.config import SegmentConfig

    encoder = MAE.from_preset("mae-tiny", channels=3).config.to_dict()
    old = {"kind": "segment", "encoder": encoder, "num_classes": 2, "head_dim": 32, "pixel_dim": 64,
           "freeze_encoder": True}  # fmt: skip
    cfg = SegmentConfig.from_dict(old)
    assert cfg.decoder == "pixel-mlp" and cfg.pixel_dim == 64
    assert SegmentConfig.from_dict(cfg.to_dict()) == cfg  # today's saved dicts name their decoder


def test_unet_decoder_shapes_and_skips():
    from masklab.models.segment.heads import UNetDecoder

    torch.manual_seed(0)
    dec = UNetDecoder(token_dim=8, channels=3, width=4, num_classes=3, patch=4).eval()
    features, image = torch.randn(2, 8, 4, 4), torch.randn(2, 3, 16, 16)
    out = dec(features, image)
    assert out.shape == (2, 3, 16, 16)
    # Each output pixel sees its own token's features and the full-resolution image (the skip connection).
    moved = image.clone()
    moved[:, :, 0, 0] += 1.0
    assert (dec(features, moved) - out)[:, :, :4, :4].abs().amax() > 0
    other = features.clone()
    other[:, :, 3, 3] += 1.0
    assert (dec(other, image) - out)[:, :, 12:, 12:].abs().amax() > 0
    with pytest.raises(ValueError, match="power-of-two patch"):
        UNetDecoder(token_dim=8, channels=3, width=4, num_classes=2, patch=3)


def test_layer_decay_scales_the_encoder_groups():
    from masklab.train.optim import param_groups

    seg = Segmenter(SegmentConfig.from_preset("finetune", encoder=ENCODER.to_dict(), layer_decay=0.5))
    assert seg.lr_scale("decoder.logits.weight") == 1.0 and seg.lr_scale("mae.encoder.norm.weight") == 1.0
    assert seg.lr_scale("mae.encoder.blocks.1.attn.qkv.weight") == 0.5  # the last of depth 2
    assert seg.lr_scale("mae.encoder.blocks.0.attn.qkv.weight") == 0.25
    assert seg.lr_scale("mae.patch_embed.weight") == 0.125
    groups = param_groups(seg, 0.01)
    names = {id(p): n for n, p in seg.named_parameters()}
    for group in groups:
        for p in group["params"]:
            assert seg.lr_scale(names[id(p)]) == group["lr_scale"]
            assert group["weight_decay"] == (0.01 if p.ndim >= 2 and "token" not in names[id(p)] else 0.0)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in seg.parameters() if p.requires_grad)
    plain = Segmenter(SegmentConfig.from_preset("finetune", encoder=ENCODER.to_dict(), layer_decay=1.0))
    assert {g["lr_scale"] for g in param_groups(plain, 0.01)} == {1.0}
    with pytest.raises(ValueError, match="layer_decay"):
        SegmentConfig.from_preset("finetune", encoder=ENCODER.to_dict(), layer_decay=0.0)


def test_a_config_saved_before_the_unet_decoder_rebuilds_the_conv_head():
    from masklab.models.segment.heads import ConvDecoder

    torch.manual_seed(0)
    old_fields = {"encoder": ENCODER.to_dict(), "num_classes": 2, "decoder": "conv", "head_dim": 32, "pixel_dim": 32,
                  "pixel_features": 16, "layers": 1, "dice_weight": 0.0, "freeze_encoder": True}  # fmt: skip
    old = Segmenter(SegmentConfig(**old_fields))
    saved = {"kind": "segment", "model": {"kind": "segment", **old_fields}}  # before layer_decay existed
    rebuilt = build_model(saved)
    assert isinstance(rebuilt.decoder, ConvDecoder) and rebuilt.config.layer_decay == 1.0
    rebuilt.load_state_dict(old.state_dict())  # the old checkpoint's keys and shapes
    images = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(rebuilt.eval()(images), old.eval()(images))
