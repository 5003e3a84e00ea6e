"""MLP widths are integers: dim 120 with 245 hidden units (no integer ratio) imports and exports exactly for
GPT-2 and ViTMAE (BERT in test_hf_bert_variants), all weights perturbed; configs saved with the old float
``mlp_ratio`` rebuild the model they built."""

import pytest
import torch

from masklab.interop.hf.gpt2 import from_hf_model, hf_config_dict, to_hf_state_dict
from masklab.interop.hf.mae import mae_config_from_hf, mae_config_to_hf, mae_from_hf, mae_to_hf_state_dict
from masklab.models.clm import GPT, GPTConfig
from masklab.models.mae import MAE, MAEConfig
from masklab.models.mlm.bert import BertConfig
from masklab.nn import TransformerConfig

transformers = pytest.importorskip("transformers")


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=g) * (0.2 if "bias" in name or "norm" in name else 0.05))
    return model


def test_native_configs_build_the_width_they_state():
    assert TransformerConfig(dim=120, depth=1, heads=4, mlp_hidden=245).mlp_hidden == 245
    bert = BertConfig(vocab_size=50, dim=120, depth=1, heads=4, intermediate=245)
    assert bert.transformer().mlp_hidden == 245
    gpt = GPT(GPTConfig(vocab_size=50, dim=120, depth=1, heads=4, mlp_hidden=245))
    assert gpt.decoder.blocks[0].mlp.fc1.out_features == 245
    with pytest.raises(ValueError, match="mlp_hidden"):
        TransformerConfig(dim=32, depth=1, heads=2, mlp_hidden=2.5)  # type: ignore[arg-type]


def test_old_float_ratio_configs_still_load():
    old_gpt = {"kind": "clm", "vocab_size": 50, "dim": 120, "depth": 1, "heads": 4, "mlp_ratio": 245 / 120}
    assert GPTConfig.from_dict(old_gpt).mlp_hidden == int(120 * (245 / 120))  # what the old code built
    old_mae = MAEConfig().to_dict()
    del old_mae["mlp_hidden"], old_mae["decoder_mlp_hidden"]
    old_mae["mlp_ratio"] = 2.0
    cfg = MAEConfig.from_dict(old_mae)
    assert (cfg.mlp_hidden, cfg.decoder_mlp_hidden) == (2 * cfg.dim, 2 * cfg.decoder_dim)


def test_gpt2_odd_n_inner_import_and_export():
    config = transformers.GPT2Config(vocab_size=61, n_positions=32, n_embd=120, n_layer=2, n_head=4, n_inner=245,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # fmt: skip
    torch.manual_seed(0)
    hf = perturb(transformers.GPT2LMHeadModel(config)).eval()
    ours = from_hf_model(hf)
    assert ours.config.mlp_hidden == 245
    ids = torch.randint(0, 61, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=2e-5, rtol=1e-5)
    back = transformers.GPT2LMHeadModel(transformers.GPT2Config(**hf_config_dict(ours.config))).eval()
    back.load_state_dict(to_hf_state_dict(ours))
    assert back.config.n_inner == 245
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, hf(ids).logits, atol=2e-5, rtol=1e-5)


def _hf_mae(**overrides):
    kwargs = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=120, num_hidden_layers=1,
                  num_attention_heads=4, intermediate_size=245, decoder_hidden_size=36, decoder_num_hidden_layers=1,
                  decoder_num_attention_heads=2, decoder_intermediate_size=77, mask_ratio=0.75)  # fmt: skip
    torch.manual_seed(0)
    hf = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**kwargs, **overrides}))
    # transformers 5 leaves the sin-cos tables at zero on random init: run its own init (as test_mae_hf_parity).
    hf.vit.embeddings.patch_embeddings.projection._is_hf_initialized = False
    hf.vit.embeddings.initialize_weights()
    hf.decoder.initialize_weights(16)
    return perturb(hf).eval()


def test_vitmae_odd_widths_import_and_export():
    hf = _hf_mae()
    ours = mae_from_hf(hf)
    assert (ours.config.mlp_hidden, ours.config.decoder_mlp_hidden) == (245, 77)
    g = torch.Generator().manual_seed(2)
    images, noise = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 16, generator=g)
    with torch.no_grad():
        ref = hf(pixel_values=images, noise=noise)
        got = ours(images, noise=noise)
    torch.testing.assert_close(got.pred, ref.logits, atol=2e-5, rtol=1e-5)
    back = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**mae_config_to_hf(ours.config))).eval()
    missing, unexpected = back.load_state_dict(mae_to_hf_state_dict(ours), strict=True)
    assert not missing and not unexpected
    with torch.no_grad():
        again = back(pixel_values=images, noise=noise)
    torch.testing.assert_close(again.logits, ref.logits, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(again.loss, ref.loss, atol=1e-6, rtol=1e-5)
    assert isinstance(MAE(mae_config_from_hf(back.config)), MAE)


@pytest.mark.parametrize("field", ["hidden_dropout_prob", "attention_probs_dropout_prob"])
def test_vitmae_dropout_is_refused_by_name(field):
    config = transformers.ViTMAEConfig(**{field: 0.1})
    with pytest.raises(ValueError, match=field):
        mae_config_from_hf(config)
