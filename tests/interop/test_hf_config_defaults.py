"""A config.json field that is absent means the HF config class's default, in transformers and in masklab:
a BERT or RoBERTa folder without ``layer_norm_eps`` used masklab's guess (RoBERTa: 1e-5, transformers 1e-12)
and gave other logits without a word; weights whose shapes the config does not promise are one error naming
the tensor and the field (it was torch's size-mismatch traceback)."""

import json
import os

import pytest
import torch

from masklab.interop.hf.bert import BERT_DEFAULTS
from masklab.interop.hf.gpt2 import load_hf_gpt2
from masklab.interop.hf.masked_lm import load_hf_mlm
from masklab.interop.hf.roberta import ROBERTA_DEFAULTS

transformers = pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    ("defaults", "config_class"), [(BERT_DEFAULTS, "BertConfig"), (ROBERTA_DEFAULTS, "RobertaConfig")]
)
def test_defaults_are_transformers_own(defaults, config_class):
    theirs = getattr(transformers, config_class)().to_dict()
    shared = [k for k in defaults if k in theirs]  # transformers 5 dropped position_embedding_type (absolute only)
    assert set(defaults) - set(shared) <= {"position_embedding_type"}
    assert {k: theirs[k] for k in shared} == {k: defaults[k] for k in shared}


def _small(kind: str):
    cls = {"bert": (transformers.BertConfig, transformers.BertForMaskedLM),
           "roberta": (transformers.RobertaConfig, transformers.RobertaForMaskedLM)}[kind]  # fmt: skip
    config = cls[0](vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
                    max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    model = cls[1](config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name and name.endswith("weight"):
                p.fill_(1.0)
                continue
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("absent", ["layer_norm_eps", "pad_token_id", "type_vocab_size", "hidden_act"])
def test_a_folder_without_a_field_loads_as_transformers_loads_it(tmp_path, kind, absent):
    _small(kind).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop(absent, None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    hf_class = {"bert": transformers.BertForMaskedLM, "roberta": transformers.RobertaForMaskedLM}[kind]
    theirs = hf_class.from_pretrained(tmp_path).eval()
    ours, _ = load_hf_mlm(tmp_path, mask_id=4)
    ids = torch.randint(3, 60, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = theirs(input_ids=ids).logits
        hidden = ours.eval()(ids)
        got = ours.predict_masked(hidden, torch.ones_like(ids, dtype=torch.bool)).view(*ids.shape, -1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_weights_of_another_size_than_the_config_are_one_error_naming_the_field(tmp_path):
    model = _small("roberta")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["max_position_embeddings"] = 30  # the weights hold 40 position rows
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"position\.weight has shape \(40, 16\), the config gives \(30, 16\) "
                                         r"\(check max_position_embeddings\)"):  # fmt: skip
        load_hf_mlm(tmp_path, mask_id=4)


def test_gpt2_weights_of_another_size_name_the_field(tmp_path):
    config = transformers.GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    saved["vocab_size"] = 60
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"tok_embed\.weight has shape \(50, 16\), the config gives \(60, 16\) "
                                         r"\(check vocab_size\)"):  # fmt: skip
        load_hf_gpt2(tmp_path)
