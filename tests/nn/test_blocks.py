import numpy as np
import pytest
import torch

from masklab import masks as M
from masklab.nn import Encoder, LearnedPositionEmbedding, TransformerConfig, sincos_1d, sincos_2d


def mae_2d_sincos(embed_dim, gh, gw, cls_token):
    """MAE's util/pos_embed.py (He et al. 2021), generalised to gh x gw, in numpy float64."""

    def one_d(dim, pos):
        omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return torch.from_numpy(emb).float()


@pytest.mark.parametrize(("gh", "gw", "cls"), [(4, 4, True), (3, 5, False), (14, 14, True)])
def test_sincos_2d_matches_mae(gh, gw, cls):
    assert torch.equal(sincos_2d(gh, gw, 32, cls_token=cls), mae_2d_sincos(32, gh, gw, cls))


def test_sincos_2d_matches_transformers():
    vit_mae = pytest.importorskip("transformers.models.vit_mae.modeling_vit_mae")
    build = getattr(vit_mae, "build_2d_sinusoidal_position_embedding", None)
    if build is None:
        want = torch.from_numpy(vit_mae.get_2d_sincos_pos_embed(64, 7, add_cls_token=True)).float()
    else:  # transformers >= 5 builds [h | w] and rotates the halves to MAE's [w | h] layout
        want = build(height=7, width=7, embed_dim=64, cls_token=True)
        want = torch.cat([want[..., 32:], want[..., :32]], dim=-1).float()
    assert torch.equal(sincos_2d(7, 7, 64, cls_token=True), want)


def test_sincos_1d_and_learned():
    t = sincos_1d(10, 8)
    assert t.shape == (10, 8) and torch.equal(t[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    pe = LearnedPositionEmbedding(16, 8)
    assert pe(4, offset=2).shape == (4, 8)
    with pytest.raises(ValueError, match="max_len"):
        pe(10, offset=8)


@pytest.mark.parametrize("norm_first", [True, False])
def test_encoder_shapes_and_weights(norm_first):
    enc = Encoder(TransformerConfig(dim=16, depth=3, heads=4, norm_first=norm_first, drop_path=0.1)).eval()
    x = torch.randn(2, 5, 16)
    out, weights = enc(x, return_weights=True)
    assert out.shape == (2, 5, 16) and len(weights) == 3 and weights[0].shape == (2, 4, 5, 5)
    torch.testing.assert_close(enc(x), out, atol=1e-6, rtol=1e-5)


def test_drop_path_only_in_training():
    enc = Encoder(TransformerConfig(dim=8, depth=2, heads=2, drop_path=0.5))
    x = torch.randn(64, 3, 8)
    enc.eval()
    a, b = enc(x), enc(x)
    assert torch.equal(a, b)
    enc.train()
    assert not torch.equal(enc(x), a)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    enc = Encoder(TransformerConfig(dim=16, depth=3, heads=2))
    x = torch.randn(2, 6, 16)
    grads = []
    for enabled in (False, True):
        enc.set_grad_checkpointing(enabled)
        enc.zero_grad()
        out = enc(x, blocked=M.causal())
        out.square().sum().backward()
        grads.append([p.grad.clone() for p in enc.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
