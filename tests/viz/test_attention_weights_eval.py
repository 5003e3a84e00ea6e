"""Attention weights shown to people are the encoder's own: no dropout, rows summing to 1, the same on every
call, whatever mode the encoder was left in (a fresh module is in training mode; BERT's attention dropout
is 0.1), and the encoder's mode is put back."""

import torch

from masklab.models.mae.model import MAE
from masklab.nn import Encoder, TransformerConfig
from masklab.viz.attention import collect_attention


def test_collect_attention_on_an_encoder_in_training_mode_returns_dropout_free_weights():
    torch.manual_seed(0)
    encoder = Encoder(TransformerConfig(dim=16, depth=2, heads=2, attn_dropout=0.1))
    x = torch.randn(2, 6, 16)
    assert encoder.training
    weights = collect_attention(encoder, x)
    assert encoder.training  # put back
    again = collect_attention(encoder, x)
    encoder.eval()
    expected = collect_attention(encoder, x)
    for w, w2, e in zip(weights, again, expected, strict=True):
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 6))
        assert torch.equal(w, e) and torch.equal(w, w2)


def test_mae_attention_guided_masks_are_replayed_by_their_seed_in_training_mode():
    # fit() draws masks with the model in training mode; with drop-path the [CLS] attention that ranks the
    # patches was a random sample, and one seed gave other masks.
    torch.manual_seed(0)
    model = MAE.from_preset("mae-tiny", mask_kind="attention-high", drop_path=0.5, depth=4, attention_noise=0.0)
    x = model.normalize(torch.rand(2, 1, 16, 16))
    model.train()
    first, second = model.patch_importance(x), model.patch_importance(x)
    assert torch.equal(first, second) and model.encoder.training
    masks = [model.sample_mask(2, generator=torch.Generator().manual_seed(1), x=x).masked for _ in range(2)]
    assert torch.equal(masks[0], masks[1])
    model.eval()
    assert torch.equal(model.patch_importance(x), first)
