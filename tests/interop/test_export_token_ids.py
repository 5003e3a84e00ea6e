"""An exported Hugging Face config states the special token ids the exported tokenizer has (None where it has
none), never a class default naming an id outside the vocabulary (``GPT2Config``'s 50256 for a 25-token char
vocabulary made ``from_pretrained`` warn on every load)."""

import json

import pytest
import torch

from masklab.interop.hf.gpt2 import hf_config_dict
from masklab.models.clm import GPT
from masklab.recipes.export import save_gpt2_folder
from masklab.tokenizers.text import TextTokenizer

transformers = pytest.importorskip("transformers")
TEXTS = ["the bank and the team.", "a goal for the coach.", "shares in the market."]


def test_gpt2_export_states_the_tokenizers_ids_and_keeps_parity(tmp_path):
    tok = TextTokenizer.train(TEXTS, "char")
    torch.manual_seed(0)
    ours = GPT.from_preset("gpt-tiny", vocab_size=tok.vocab_size, context=16).eval()
    save_gpt2_folder(ours, tmp_path, tok)
    config = json.loads((tmp_path / "config.json").read_text())
    # masklab's LM stream separates documents with sep: GPT-2's <|endoftext|>, its bos and eos.
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (tok.sep_id, tok.sep_id,
                                                                                         tok.pad_id)  # fmt: skip
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        assert 0 <= getattr(hf.config, name) < tok.vocab_size, name
    ids = torch.randint(0, tok.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, ours(ids), rtol=0, atol=1e-5)


def test_gpt2_config_without_a_tokenizer_names_no_ids():
    cfg = GPT.from_preset("gpt-tiny", vocab_size=25, context=16).config
    hf = transformers.GPT2Config(**hf_config_dict(cfg))
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (None, None, None)
    gpt2_tokenizer = TextTokenizer.train(TEXTS, "bpe", vocab_size=300, min_frequency=1)
    ids = hf_config_dict(cfg, gpt2_tokenizer)  # byte-level BPE: </s> separates documents, <pad> pads
    assert ids["bos_token_id"] == ids["eos_token_id"] == gpt2_tokenizer.token_to_id("</s>")
    assert ids["pad_token_id"] == gpt2_tokenizer.token_to_id("<pad>")


def test_roberta_export_states_the_tokenizers_bos_and_eos(tmp_path):
    from masklab.interop.hf.roberta import load_roberta_mlm, save_roberta_mlm

    tok = TextTokenizer.train(TEXTS * 4, "bpe", vocab_size=120, min_frequency=1)
    assert (tok.pad_id, tok.cls_id, tok.sep_id) == (0, 2, 3)  # not roberta-base's <s> 0, <pad> 1, </s> 2
    ids = dict(pad_token_id=tok.pad_id, bos_token_id=tok.cls_id, eos_token_id=tok.sep_id)
    sizes = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    config = transformers.RobertaConfig(vocab_size=tok.vocab_size, max_position_embeddings=34, **sizes, **ids)
    transformers.RobertaForMaskedLM(config).save_pretrained(tmp_path / "hf")
    ours, _ = load_roberta_mlm(tmp_path / "hf", mask_id=tok.mask_id)
    save_roberta_mlm(ours, tmp_path / "back", tok)
    again = transformers.RobertaConfig.from_pretrained(tmp_path / "back")
    assert (again.pad_token_id, again.bos_token_id, again.eos_token_id) == (tok.pad_id, tok.cls_id, tok.sep_id)
