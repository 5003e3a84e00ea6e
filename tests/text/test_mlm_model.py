"""BertForMLM: the sparse loss is the dense masked loss, configs round-trip, classification, fill-mask."""

import json

import pytest
import torch
import torch.nn.functional as F

from masklab.core.contract import preset_config, saved_config
from masklab.masks.ops import loss_on_masked
from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig
from masklab.models.registry import build_model
from masklab.recipes.mlm_tasks import fill_mask
from masklab.tokenizers.text import TextTokenizer

SPECIAL = (0, 1, 2, 3, 4)


def _model(**kw) -> BertForMLM:
    torch.manual_seed(0)
    bert = preset_config(
        BertConfig, PRESETS, "bert-tiny", vocab_size=200, dim=32, heads=2, dropout=0.0, attn_dropout=0.0
    )
    return BertForMLM(MLMConfig(bert=bert, mask_id=4, special_ids=SPECIAL, **kw))


def _batch(g):
    ids = torch.randint(5, 200, (4, 20), generator=g)
    padding = torch.zeros(4, 20, dtype=torch.bool)
    padding[2, 15:] = True
    ids[:, 0] = 2
    ids[padding] = 0
    return {"ids": ids, "padding": padding, "word_ids": torch.arange(20).expand(4, 20).masked_fill(padding, -1)}


def test_sparse_loss_equals_dense_masked_loss():
    model = _model()
    batch = _batch(torch.Generator().manual_seed(0))
    out = model.training_loss(batch, torch.Generator().manual_seed(7))
    drawn = model.draw(batch, torch.Generator().manual_seed(7))  # the same draw again
    inputs, masked = drawn.inputs, drawn.masked
    hidden = model(inputs, batch["padding"])
    dense_logits = model.head(hidden, model.bert.embeddings.word.weight)  # (B, L, V): every position
    per_token = F.cross_entropy(dense_logits.transpose(1, 2), batch["ids"], reduction="none")  # (B, L)
    torch.testing.assert_close(out.loss, loss_on_masked(per_token, masked, batch["padding"]))
    assert 0 < float(out.metrics["masked_frac"]) < 1


def test_nothing_to_mask_gives_zero_loss_not_nan():
    model = _model()
    ids = torch.tensor([[2, 3, 0, 0]])  # only special tokens and padding
    batch = {"ids": ids, "padding": ids == 0, "word_ids": torch.full_like(ids, -1)}
    out = model.training_loss(batch, torch.Generator().manual_seed(0))
    assert float(out.loss.detach()) == 0.0
    out.loss.backward()  # still a graph: fit can call backward on it


def test_config_roundtrip_through_registry_and_json():
    model = _model(masking="whole_word", mask_ratio=0.2)
    config = json.loads(json.dumps(saved_config(model)))
    rebuilt = build_model({"kind": config["kind"], "model": config})
    assert rebuilt.config == model.config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    old = {("mask_rate" if k == "mask_ratio" else k): v for k, v in config.items()}  # runs saved before the rename
    assert build_model({"kind": "mlm", "model": old}).config == model.config


def test_tied_output_embedding_is_not_a_separate_tensor():
    model = _model()
    names = list(model.state_dict())
    assert sum("word" in n for n in names) == 1  # the vocabulary projection reuses embeddings.word.weight
    assert model.head.bias.shape == (200,)


def test_classification_head_trains():
    model = _model(task="classify", num_labels=3)
    g = torch.Generator().manual_seed(1)
    batch = {**_batch(g), "labels": torch.tensor([0, 1, 2, 1])}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        out = model.training_loss(batch, g)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert model.classify(batch["ids"], batch["padding"]).shape == (4, 3)
    assert _model().classifier is None
    with pytest.raises(ValueError, match="no classification head"):
        _model().classify(batch["ids"])


def test_config_errors():
    bert = BertConfig(vocab_size=50, dim=32, depth=1, heads=2)
    with pytest.raises(ValueError, match="mask_id=99 is outside"):
        MLMConfig(bert=bert, mask_id=99)
    with pytest.raises(ValueError, match="mask_ratio"):
        MLMConfig(bert=bert, mask_id=4, mask_ratio=0.0)
    with pytest.raises(ValueError, match="replace_mask"):
        MLMConfig(bert=bert, mask_id=4, replace_mask=0.8, replace_random=0.3)
    with pytest.raises(ValueError, match="num_labels >= 2"):
        MLMConfig(bert=bert, mask_id=4, task="classify")
    with pytest.raises(ValueError, match="unknown MLMConfig fields"):
        MLMConfig.from_dict({"bert": bert.to_dict(), "mask_id": 4, "rate": 0.1})
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(vocab_size=50, dim=30, heads=4)
    with pytest.raises(ValueError, match="exceeds max_len"):
        BertForMLM(MLMConfig(bert=BertConfig(vocab_size=50, dim=32, depth=1, heads=2, max_len=8), mask_id=4))(
            torch.zeros(1, 9, dtype=torch.long)
        )


def test_fill_mask_predicts_exactly_the_mask_tokens():
    tok = TextTokenizer.train(["the team won the match", "the bank raised rates"] * 10, vocab_size=60)
    bert = preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=tok.vocab_size, dim=32, heads=2)
    model = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id, special_ids=tok.special_ids)).eval()
    results = fill_mask(model, tok, "the [MASK] won the [MASK]", top_k=3)
    assert [r["position"] for r in results] == [2, 5]  # [CLS] the [MASK] won the [MASK] [SEP]
    for r in results:
        probs = [p for _, p in r["candidates"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert fill_mask(model, tok, "the [MASK] won the [MASK]", top_k=3) == results  # deterministic
    with pytest.raises(ValueError, match="no \\[MASK\\] token"):
        fill_mask(model, tok, "no mask here")
