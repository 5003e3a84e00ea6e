"""Parity with Hugging Face ``ViTMAEForPreTraining``: copied random weights, same noise -> same loss,
predictions, mask and ids_restore (and gradients), through the real converter."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from masklab.interop.hf.mae import mae_from_hf, mae_from_hf_state_dict  # noqa: E402


def make_hf(channels: int, norm_pix: bool, image: int = 16, patch: int = 4, ratio: float = 0.75):
    cfg = transformers.ViTMAEConfig(
        image_size=image, patch_size=patch, num_channels=channels, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, decoder_hidden_size=24, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2, decoder_intermediate_size=48, norm_pix_loss=norm_pix, mask_ratio=ratio,
    )  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.ViTMAEForPreTraining(cfg)
    # transformers 5.x leaves the sin-cos tables and tokens at zero on random init; run its own init code
    # (the layout released MAE checkpoints use), then make every other parameter non-trivial.
    hf.vit.embeddings.patch_embeddings.projection._is_hf_initialized = False
    hf.vit.embeddings.initialize_weights()
    hf.decoder.initialize_weights((image // patch) ** 2)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.requires_grad and ("bias" in name or "token" in name or "norm" in name):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return hf


@pytest.mark.parametrize(("channels", "norm_pix"), [(3, False), (3, True), (1, True), (2, False)])
def test_forward_matches_hf(channels, norm_pix):
    hf = make_hf(channels, norm_pix).eval()
    ours = mae_from_hf(hf)
    g = torch.Generator().manual_seed(2)
    images = torch.rand(3, channels, 16, 16, generator=g)
    noise = torch.rand(3, 16, generator=g)
    with torch.no_grad():
        expected = hf(pixel_values=images, noise=noise)
        got = ours(images, noise=noise)
    torch.testing.assert_close(got.pred, expected.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.masked, expected.mask.bool(), rtol=0, atol=0)  # HF: 1 = removed
    torch.testing.assert_close(got.ids_restore, expected.ids_restore, rtol=0, atol=0)


def test_gradients_match_hf():
    hf = make_hf(3, True).train()
    ours = mae_from_hf(hf).train()
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 16, 16, generator=g)
    noise = torch.rand(2, 16, generator=g)
    hf(pixel_values=images, noise=noise).loss.backward()
    ours(images, noise=noise).loss.backward()
    # Frozen sin-cos tables have no gradient; pass their values so the converter's table check sees them.
    hf_grads = {k: p.detach() if p.grad is None else p.grad for k, p in hf.named_parameters()}
    mapped = mae_from_hf_state_dict(hf_grads, ours.config)
    ours_grads = {k: p.grad for k, p in ours.named_parameters()}
    assert set(mapped) == set(ours_grads)
    for key, grad in ours_grads.items():
        torch.testing.assert_close(grad, mapped[key], rtol=1e-4, atol=1e-6, msg=key)


def test_converter_rejects_tables_that_are_not_sincos():
    hf = make_hf(3, False)
    state = hf.state_dict()
    state["decoder.decoder_pos_embed"] = torch.zeros_like(state["decoder.decoder_pos_embed"])
    with pytest.raises(ValueError, match="decoder_pos_embed is not MAE's fixed 2-D sin-cos table"):
        mae_from_hf_state_dict(state, mae_from_hf(hf).config)


def test_converter_rejects_extra_keys():
    hf = make_hf(3, False)
    state = {**hf.state_dict(), "vit.extra.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="unexpected HF ViTMAE keys"):
        mae_from_hf_state_dict(state, mae_from_hf(hf).config)
