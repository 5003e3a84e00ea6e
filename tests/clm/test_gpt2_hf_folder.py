"""A Hugging Face GPT-2 folder (config.json + model.safetensors + tokenizer.json) through the CLI."""

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
text_tokenizers = pytest.importorskip("masklab.tokenizers.text")

from masklab.cli import main  # noqa: E402

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 30


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    (root / "text.txt").write_text(TEXT)
    tok = text_tokenizers.TextTokenizer.train([TEXT], "bpe", vocab_size=300, min_frequency=1)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                     initializer_range=0.6, bos_token_id=0, eos_token_id=0, pad_token_id=0)  # fmt: skip
    hf = transformers.GPT2LMHeadModel(config).eval()
    folder = root / "gpt2"
    hf.save_pretrained(folder)
    tok.save(folder)
    return folder, hf, tok


def test_generate_from_hf_folder_matches_hf(hf_folder, capsys):
    folder, hf, tok = hf_folder
    prompt = "To be, or"
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False).ids])
    want = hf.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)[0, ids.shape[1] :]
    assert main(["generate", str(folder), prompt, "--greedy", "--max-tokens", "12", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == prompt + tok.decode(want.tolist()) + "\n"


def test_perplexity_of_hf_folder_matches_hf_loss(hf_folder, capsys):
    folder, hf, tok = hf_folder
    text = folder.parent / "text.txt"
    assert main(["perplexity", str(folder), "--data", str(text), "--json", "--device", "cpu"]) == 0
    got = json.loads(capsys.readouterr().out)
    stream = [i for line in TEXT.splitlines() for i in [*tok.encode(line, add_special_tokens=False).ids, tok.sep_id]]
    stream = torch.tensor(stream[:-1])  # read_corpus gives one document per line of a .txt; sep between them
    windows = stream[: (len(stream) - 1) // 64 * 64 + 1]
    ids = torch.stack([windows[i : i + 65] for i in range(0, len(windows) - 64, 64)])
    with torch.no_grad():
        logits = hf(ids[:, :-1]).logits
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    assert got["tokens"] == ids[:, 1:].numel()
    assert got["loss"] == pytest.approx(float(want), rel=1e-5)


def test_pretrain_init_from_hf_folder(hf_folder, tmp_path, capsys):
    folder, _, _ = hf_folder
    out = tmp_path / "run"
    args = ["pretrain", "clm", "--init-from", str(folder), "--data", str(folder.parent / "text.txt"), "--out",
            str(out), "--context", "32", "--steps", "3", "--batch-size", "4", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    assert "starting from" in capsys.readouterr().out
    assert main(["generate", str(out), "To be", "--max-tokens", "5", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("To be")
    clash = ["pretrain", "clm", "--init-from", str(folder), "--out", str(tmp_path / "r2"), "--dim", "64"]
    assert main(clash) == 2
    assert "--dim" in capsys.readouterr().err


def test_non_gpt2_folder_is_refused(tmp_path, capsys):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert main(["generate", str(tmp_path), "x"]) == 2
    assert "llama" in capsys.readouterr().err
