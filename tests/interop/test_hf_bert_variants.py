"""BERT configurations the base parity tests do not cover: an untied MLM decoder, an odd MLP width,
``pad_token_id: null``, and every unused or conflicting HF tensor reported by name. All weights perturbed."""

import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from masklab.interop.hf.bert import load_bert_mlm, save_bert_mlm

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 90


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its init (LayerNorms off 1/0, biases off 0, embeddings and matrices)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.3 if ("LayerNorm" in name or "bias" in name or "layer_norm" in name) else 0.05
            param.add_(torch.randn(param.shape, generator=g) * scale)
    return model


def hf_bert(**overrides):
    kwargs = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    return perturb(transformers.BertForMaskedLM(transformers.BertConfig(**{**kwargs, **overrides}))).eval()


def batch(seed: int = 1, pad_id: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (3, 12), generator=g)
    padding = torch.zeros(3, 12, dtype=torch.bool)
    padding[1, 9:] = True
    padding[2, 3:] = True
    ids[padding] = pad_id
    return ids, padding


def assert_same_logits(ours, hf, ids, padding):
    with torch.no_grad():
        ref = hf(ids, attention_mask=(~padding).long()).logits  # (B, L, V)
        got = ours.predict_masked(ours(ids, padding), ~padding)  # (M, V)
    torch.testing.assert_close(got, ref[~padding], atol=2e-5, rtol=1e-5)


def test_untied_decoder_imports_and_exports_exactly(tmp_path):
    hf = hf_bert(tie_word_embeddings=False)
    assert not torch.equal(hf.cls.predictions.decoder.weight, hf.bert.embeddings.word_embeddings.weight)
    hf.save_pretrained(tmp_path / "hf")
    ours, unused = load_bert_mlm(tmp_path / "hf", mask_id=4)
    assert not ours.config.tie_embeddings and ours.head.decoder is not None
    # Untied, HF's forward adds decoder.bias; cls.predictions.bias (perturbed apart from it) is read by neither.
    assert unused == ["cls.predictions.bias"]
    ids, padding = batch()
    assert_same_logits(ours.eval(), hf, ids, padding)
    save_bert_mlm(ours, tmp_path / "back")
    again = transformers.BertForMaskedLM.from_pretrained(tmp_path / "back").eval()
    assert again.config.tie_word_embeddings is False
    assert_same_logits(ours, again, ids, padding)


def test_tied_config_with_a_different_decoder_is_refused_by_name(tmp_path):
    hf = hf_bert(tie_word_embeddings=False)
    hf.save_pretrained(tmp_path)
    config = (
        (tmp_path / "config.json").read_text().replace('"tie_word_embeddings": false', '"tie_word_embeddings": true')
    )
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match=r"cls\.predictions\.decoder\.weight differs from the word embeddings"):
        load_bert_mlm(tmp_path, mask_id=4)


def test_every_unused_tensor_is_reported(tmp_path):
    hf = hf_bert()
    hf.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["cls.predictions.decoder.weight"] = tensors["bert.embeddings.word_embeddings.weight"].clone()
    tensors["bert.pooler.dense.weight"] = torch.zeros(32, 32)
    tensors["extra.thing"] = torch.zeros(3)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    _, unused = load_bert_mlm(tmp_path, mask_id=4)
    assert unused == ["bert.pooler.dense.weight", "extra.thing"]  # the equal tied decoder is used


def test_odd_mlp_width_imports_and_exports(tmp_path):
    hf = hf_bert(hidden_size=40, num_attention_heads=4, intermediate_size=99)  # 99 / 40 is no integer ratio
    hf.save_pretrained(tmp_path / "hf")
    ours, _ = load_bert_mlm(tmp_path / "hf", mask_id=4)
    assert ours.bert.encoder.blocks[0].mlp.fc1.out_features == 99
    ids, padding = batch(2)
    assert_same_logits(ours.eval(), hf, ids, padding)
    save_bert_mlm(ours, tmp_path / "back")
    again = transformers.BertForMaskedLM.from_pretrained(tmp_path / "back").eval()
    assert again.config.intermediate_size == 99
    assert_same_logits(ours, again, ids, padding)


def test_pad_token_id_null_builds_no_padding_row(tmp_path):
    hf = hf_bert(pad_token_id=None)
    assert hf.bert.embeddings.word_embeddings.padding_idx is None
    hf.save_pretrained(tmp_path)
    ours, _ = load_bert_mlm(tmp_path, mask_id=4)
    assert ours.config.bert.pad_id is None and ours.bert.embeddings.word.padding_idx is None
    ids = torch.tensor([[5, 0, 7, 0, 9, 11]])  # token 0 is an ordinary token here
    ours.eval()
    hf(ids).logits.sum().backward()
    ours.predict_masked(ours(ids), torch.ones_like(ids, dtype=torch.bool)).sum().backward()
    grad = ours.bert.embeddings.word.weight.grad
    assert grad[0].abs().sum() > 0  # not frozen, as in HF
    torch.testing.assert_close(grad, hf.bert.embeddings.word_embeddings.weight.grad, atol=1e-5, rtol=1e-4)


def test_unsupported_bert_config_is_refused_by_name(tmp_path):
    hf = hf_bert()
    hf.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match="hidden_act"):
        load_bert_mlm(tmp_path, mask_id=4)
