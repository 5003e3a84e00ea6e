"""Text pretraining is reproducible: the same command gives bit-identical weights and tokenizer.json, and
``--workers`` (batches built in DataLoader worker processes) does not change the result."""

import pytest
import torch
from safetensors.torch import load_file

from masklab.cli import main
from masklab.data.text import load_text_corpus
from masklab.tokenizers.text import TextTokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A slice of the built-in Shakespeare in 24 files."""
    root = tmp_path_factory.mktemp("corpus")
    text = "\n".join(load_text_corpus("builtin:shakespeare").texts)[:120_000]
    step = len(text) // 24
    for i in range(24):
        (root / f"{i:03d}.txt").write_text(text[i * step : (i + 1) * step], encoding="utf-8")
    return root


def _weights(run):
    state = load_file(str(run / "checkpoint.safetensors"))
    return {k: v for k, v in state.items() if k.startswith("model.")} or state


def _same_run(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not differ, f"{len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}"
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()


def test_wordpiece_training_numbers_the_pieces_the_same_way_every_time():
    # The HF trainer numbers the "##x" letters in HashMap order: 31 of these 1000 ids moved between two trainings.
    texts = load_text_corpus("builtin:shakespeare").texts
    first = TextTokenizer.train(texts, "wordpiece", vocab_size=1000)
    again = TextTokenizer.train(texts, "wordpiece", vocab_size=1000)
    assert again.to_json() == first.to_json()
    assert [first.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]


MLM = ["pretrain", "mlm", "--preset", "bert-tiny", "--seq-len", "32", "--batch-size", "8",
       "--device", "cpu", "--steps", "2", "--log-every", "1"]  # fmt: skip


def test_pretrain_mlm_twice_gives_identical_runs(corpus, tmp_path):
    # The initial weights were drawn unseeded; --workers 0 was refused on a folder (its prepare needs >= 1).
    tok = TextTokenizer.train(load_text_corpus(str(corpus)).texts, "wordpiece", vocab_size=300).save(tmp_path)
    runs = [tmp_path / name for name in ("a", "b", "w2")]
    for run, workers in zip(runs, ("0", "0", "2"), strict=True):
        argv = [*MLM, "--data", str(corpus), "--tokenizer", str(tok), "--out", str(run), "--workers", workers]
        assert main(argv) == 0
    _same_run(runs[0], runs[1])
    _same_run(runs[0], runs[2])


CLM = ["pretrain", "clm", "--dim", "32", "--depth", "1", "--heads", "2", "--context", "32", "--batch-size", "4",
       "--device", "cpu", "--steps", "2", "--log-every", "1", "--tokenizer-kind", "bpe",
       "--vocab-size", "300"]  # fmt: skip


def test_pretrain_clm_twice_gives_identical_runs(corpus, tmp_path):
    runs = [tmp_path / name for name in ("a", "b", "w2")]
    for run, workers in zip(runs, ("0", "0", "2"), strict=True):
        assert main([*CLM, "--data", str(corpus), "--out", str(run), "--workers", workers]) == 0
    _same_run(runs[0], runs[1])
    _same_run(runs[0], runs[2])
