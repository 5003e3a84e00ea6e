"""Attention maps: the visualisation path's weights against float64 softmax(QKᵀ/√d + mask), rollout, PNGs."""

import copy
import math

import pytest
import torch
from PIL import Image

from masklab.nn.blocks import Encoder, TransformerConfig
from masklab.viz.attention import attention_heatmaps, attention_rollout, collect_attention, rollout_overlay


def float64_weights(encoder: Encoder, x: torch.Tensor, blocked: torch.Tensor) -> list[torch.Tensor]:
    """softmax(q kᵀ / sqrt(Dh) + additive mask) per layer, every step in float64; fully blocked rows -> 0."""
    enc = copy.deepcopy(encoder).double()
    h = x.double()
    out = []
    for block in enc.blocks:
        a = block.norm1(h)
        B, L, D = a.shape
        heads = block.attn.heads
        qkv = block.attn.qkv(a).view(B, L, 3, heads, D // heads).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        q, k = qkv[0], qkv[1]
        additive = torch.zeros(blocked.shape, dtype=torch.float64).masked_fill(blocked, -math.inf)
        scores = q @ k.transpose(-2, -1) / math.sqrt(D // heads) + additive  # (B, H, L, L)
        weights = torch.softmax(scores, dim=-1)
        out.append(torch.nan_to_num(weights, nan=0.0))  # a row of -inf only: softmax gives NaN, the rule says 0
        h = block(h, blocked=blocked)  # the next layer sees the same masked attention
    return out


def test_visualisation_weights_equal_float64_softmax_and_rows_sum_to_one():
    torch.manual_seed(0)
    encoder = Encoder(TransformerConfig(dim=32, depth=3, heads=4)).eval()
    B, L = 2, 7
    x = torch.randn(B, L, 32)
    padding = torch.zeros(B, L, dtype=torch.bool)
    padding[1, 5:] = True  # row 1: two padded keys
    blocked = torch.zeros(1, 1, L, L, dtype=torch.bool)
    blocked[..., 2, :] = True  # query 2 may attend to nothing: its row must be zeros
    blocked[..., 3, 0] = True
    full_blocked = blocked | padding[:, None, None, :]  # (B, 1, L, L) True = may NOT attend: padding folds in
    weights = collect_attention(encoder, x, blocked=full_blocked)
    reference = float64_weights(encoder, x, full_blocked)
    assert len(weights) == 3
    for w, ref in zip(weights, reference, strict=True):
        assert w.shape == (B, 4, L, L) and w.dtype == torch.float32
        torch.testing.assert_close(w.double(), ref, rtol=1e-5, atol=1e-6)
        allowed = ~full_blocked.expand_as(w)
        assert (w[~allowed] == 0).all()  # blocked and padded keys get exactly 0
        row_sums = w.sum(-1)  # (B, H, L)
        live = allowed.any(-1)
        torch.testing.assert_close(row_sums[live], torch.ones(int(live.sum())))
        assert (row_sums[~live] == 0).all()


def test_visualisation_path_leaves_the_fused_training_path_alone():
    torch.manual_seed(1)
    encoder = Encoder(TransformerConfig(dim=32, depth=2, heads=2)).eval()
    x = torch.randn(2, 5, 32)
    collect_attention(encoder, x)
    assert all(block.attn.backend == "sdpa" for block in encoder.blocks)
    with torch.inference_mode():
        fused = encoder(x)
        reference, _ = encoder(x, return_weights=True)
    torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-5)


def test_rollout_matches_a_hand_computed_example():
    layer1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]], dtype=torch.float64)[None]
    layer2 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)[None]
    # Head means: A1 = [[.5, .5], [.5, .5]], A2 = [[1, 0], [.5, .5]]. With the residual 0.5 A + 0.5 I:
    # A1' = [[.75, .25], [.25, .75]], A2' = [[1, 0], [.25, .75]], and A2' A1' below.
    expected = torch.tensor([[[0.75, 0.25], [0.375, 0.625]]], dtype=torch.float64)
    torch.testing.assert_close(attention_rollout([layer1, layer2]), expected, rtol=0, atol=1e-15)
    plain = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]], dtype=torch.float64)  # A2 A1 without the residual
    torch.testing.assert_close(attention_rollout([layer1, layer2], residual=False), plain, rtol=0, atol=1e-15)
    torch.testing.assert_close(attention_rollout([layer1]), torch.tensor([[[0.75, 0.25], [0.25, 0.75]]],
                               dtype=torch.float64))  # fmt: skip


def test_rollout_of_a_real_encoder_is_row_stochastic():
    torch.manual_seed(2)
    encoder = Encoder(TransformerConfig(dim=32, depth=3, heads=2)).eval()
    weights = [w.double() for w in collect_attention(encoder, torch.randn(2, 10, 32))]
    rollout = attention_rollout(weights)
    assert rollout.shape == (2, 10, 10) and (rollout >= 0).all()
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least one"):
        attention_rollout([])


def test_heatmap_and_overlay_pngs_are_written(tmp_path):
    torch.manual_seed(3)
    encoder = Encoder(TransformerConfig(dim=32, depth=2, heads=2)).eval()
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    weights = collect_attention(encoder, torch.randn(1, 5, 32))
    path = attention_heatmaps([w[0] for w in weights], tokens, tmp_path / "attn.png")
    with Image.open(path) as image:
        assert image.width > 400 and image.height > 300
    one = attention_heatmaps([w[0] for w in weights], tokens, tmp_path / "one.png", layer=1, head=0)
    with Image.open(one) as image, Image.open(path) as full:
        assert image.height < full.height  # one layer, one head plus the mean
    image = torch.rand(1, 28, 28)
    overlay = rollout_overlay(image, torch.rand(49), (7, 7), tmp_path / "overlay.png")
    with Image.open(overlay) as png:
        assert png.width > 300
    with pytest.raises(ValueError, match="token labels"):
        attention_heatmaps([w[0] for w in weights], tokens[:3], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="layer"):
        attention_heatmaps([w[0] for w in weights], tokens, tmp_path / "bad.png", layer=5)
    with pytest.raises(ValueError, match="7x7"):
        rollout_overlay(image, torch.rand(48), (7, 7), tmp_path / "bad.png")
