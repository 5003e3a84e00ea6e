"""RoBERTa against Hugging Face ``RobertaForMaskedLM`` with every weight perturbed: logits, loss and gradients,
export -> ``from_pretrained`` round trip, and ``fill`` with ``<mask>`` through a byte-level BPE tokenizer."""

import os

import pytest
import torch
import torch.nn.functional as F

from masklab.interop.hf.masked_lm import load_hf_masked_lm
from masklab.interop.hf.roberta import load_roberta_mlm, save_roberta_mlm
from masklab.recipes.mlm_tasks import fill_mask
from masklab.tokenizers.text import TextTokenizer

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB, PAD = 100, 1


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 0.3 if ("norm" in name.lower() or "bias" in name) else 0.05
            param.add_(torch.randn(param.shape, generator=g) * scale)
    return model


def hf_roberta(vocab: int = VOCAB, **overrides):
    kwargs = dict(vocab_size=vocab, hidden_size=40, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=99, max_position_embeddings=34, type_vocab_size=1, pad_token_id=PAD,
                  bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    return perturb(transformers.RobertaForMaskedLM(transformers.RobertaConfig(**{**kwargs, **overrides}))).eval()


def batch(seed: int = 1):
    """Right- and left-padded rows: RoBERTa's positions count real tokens only, so both must match."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (3, 14), generator=g)
    padding = torch.zeros(3, 14, dtype=torch.bool)
    padding[1, 10:] = True
    padding[2, :5] = True
    ids[padding] = PAD
    return ids, padding


def test_logits_loss_and_grads_match_hf(tmp_path):
    hf = hf_roberta()
    hf.save_pretrained(tmp_path)
    ours, unused = load_roberta_mlm(tmp_path, mask_id=4)
    assert unused == []
    assert ours.config.bert.positions == "roberta" and ours.config.bert.max_tokens == 32
    ours.eval()
    ids, padding = batch()
    ref = hf(ids, attention_mask=(~padding).long()).logits  # (B, L, V)
    got = ours.predict_masked(ours(ids, padding), ~padding)  # (M, V)
    torch.testing.assert_close(got, ref[~padding].detach(), atol=2e-5, rtol=1e-5)

    masked = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(5)) < 0.3) & ~padding
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    hf.zero_grad()
    hf_loss = hf(ids, attention_mask=(~padding).long(), labels=labels).loss
    loss = F.cross_entropy(ours.predict_masked(ours(ids, padding), masked), ids[masked])
    torch.testing.assert_close(loss, hf_loss, atol=1e-6, rtol=1e-6)
    hf_loss.backward()
    loss.backward()
    pairs = [
        ("roberta.embeddings.word_embeddings.weight", "bert.embeddings.word.weight"),
        ("roberta.embeddings.position_embeddings.weight", "bert.embeddings.position.weight"),
        ("lm_head.bias", "head.bias"),
        ("lm_head.layer_norm.weight", "head.norm.weight"),
        ("roberta.encoder.layer.1.intermediate.dense.weight", "bert.encoder.blocks.1.mlp.fc1.weight"),
    ]
    hf_params, our_params = dict(hf.named_parameters()), dict(ours.named_parameters())
    for theirs, mine in pairs:
        torch.testing.assert_close(our_params[mine].grad, hf_params[theirs].grad, atol=1e-6, rtol=1e-4, msg=mine)


def test_export_reloads_in_transformers(tmp_path):
    hf = hf_roberta(tie_word_embeddings=False)
    hf.save_pretrained(tmp_path / "hf")
    ours, _ = load_roberta_mlm(tmp_path / "hf", mask_id=4)
    save_roberta_mlm(ours, tmp_path / "back")
    again = transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "back").eval()
    assert isinstance(again, transformers.RobertaForMaskedLM) and again.config.tie_word_embeddings is False
    ids, padding = batch(2)
    with torch.no_grad():
        ref = hf(ids, attention_mask=(~padding).long()).logits
        torch.testing.assert_close(again(ids, attention_mask=(~padding).long()).logits, ref, atol=2e-5, rtol=1e-5)
    reloaded, unused = load_roberta_mlm(tmp_path / "back", mask_id=4)
    assert unused == []
    for (name, a), b in zip(ours.state_dict().items(), reloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


CORPUS = [
    "the cat sat on the mat and the dog sat on the rug",
    "a cat and a dog played in the garden all day long",
    "the bird sang in the tree while the cat slept on the mat",
] * 4


def test_fill_mask_with_bpe_tokenizer_matches_hf(tmp_path):
    tokenizer = TextTokenizer.train(CORPUS, "bpe", vocab_size=120, min_frequency=1)
    assert tokenizer.mask_token == "<mask>"
    hf = hf_roberta(vocab=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id, bos_token_id=tokenizer.cls_id,
                    eos_token_id=tokenizer.sep_id)  # fmt: skip
    hf.save_pretrained(tmp_path)
    tokenizer.backend.model.save(str(tmp_path))  # RoBERTa's vocab.json + merges.txt, no tokenizer.json
    model, loaded, unused = load_hf_masked_lm(tmp_path)
    assert unused == [] and loaded.mask_id == tokenizer.mask_id == model.config.mask_id
    text = "the cat sat on the <mask> and the dog"
    assert loaded.encode(text).ids == tokenizer.encode(text).ids
    results = fill_mask(model.eval(), loaded, text, top_k=3)
    ids = torch.tensor([loaded.encode(text).ids])
    position = int((ids[0] == loaded.mask_id).nonzero())
    with torch.no_grad():
        probs = hf(ids).logits[0, position].softmax(-1)
    top = probs.topk(3)
    assert [r["position"] for r in results] == [position]
    assert [tok for tok, _ in results[0]["candidates"]] == [loaded.id_to_token(i) for i in top.indices.tolist()]
    torch.testing.assert_close(torch.tensor([p for _, p in results[0]["candidates"]]), top.values, atol=1e-5, rtol=0)


def test_roberta_without_pad_token_is_refused(tmp_path):
    hf_roberta().save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text().replace('"pad_token_id": 1', '"pad_token_id": null')
    (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError, match="pad_token_id"):
        load_roberta_mlm(tmp_path, mask_id=4)
