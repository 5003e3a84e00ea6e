"""``export-hf`` of a CLM run: ``AutoTokenizer.from_pretrained(folder)`` gives exactly masklab's ids (the run's
LM encodes without special tokens), and config.json's eos/bos/pad ids are the exported tokenizer's. Before,
the run's ``tokenizer.json`` went out as it was (a ``[CLS] $A [SEP]`` template) with no
``tokenizer_config.json``: transformers picked ``GPT2Tokenizer`` for model_type gpt2, a char tokenizer lost
its spaces, BPE prompts came framed by ``<s>``/``</s>``, and ``eos_token`` was ``<|endoftext|>``, not in the
vocabulary."""

import json

import pytest

from masklab.cli import main
from masklab.tokenizers.text import TextTokenizer

transformers = pytest.importorskip("transformers")

TEXT = "the bank and the team met at noon.\nshares in the market fell.\na goal for the coach: café!\n" * 20
PROMPTS = ["the team", "  two  spaces\nand a new line", "café naïve 東京 ü", "shares</s>[SEP] fell", " x ", ""]


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_exported_gpt2_tokenizer_gives_masklabs_ids(kind, tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT)
    run = tmp_path / "run"
    assert main(["pretrain", "clm", "--data", str(tmp_path / "t.txt"), "--out", str(run), "--tokenizer-kind",
                 kind, "--vocab-size", "280", "--context", "8", "--dim", "16", "--depth", "1", "--heads", "2",
                 "--steps", "1", "--batch-size", "2", "--device", "cpu"]) == 0  # fmt: skip
    folder = tmp_path / "hf"
    assert main(["export-hf", str(run), str(folder)]) == 0
    ours = TextTokenizer.load(run / "tokenizer.json")
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    for text in PROMPTS:
        want = ours.encode(text, add_special_tokens=False).ids
        assert hf(text)["input_ids"] == want, text
        assert hf.encode(text) == want, text
    config = json.loads((folder / "config.json").read_text())
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["eos_token_id"] == config["bos_token_id"] == hf.eos_token_id == hf.bos_token_id == ours.sep_id
    assert config["pad_token_id"] == hf.pad_token_id == ours.pad_id
    hf_config = transformers.AutoConfig.from_pretrained(folder)
    assert hf_config.eos_token_id == hf.eos_token_id
    # the folder still reads in masklab, and a second export replaces the first (tokenizer_config.json is ours)
    assert main(["generate", str(folder), "the", "--max-tokens", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["export-hf", str(run), str(folder)]) == 0
    out = capsys.readouterr()
    assert "replaced the earlier GPT2LMHeadModel export" in out.out + out.err
