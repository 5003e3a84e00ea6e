"""Training from prepared shards == training from the in-memory path on the same small corpus."""

import sys

import torch

from masklab.core.contract import saved_config
from masklab.data.lm import LMWindows, split_by_position, token_stream
from masklab.data.shards import PreparedCorpus, ShardBlocksData, TokenSpan
from masklab.data.shards.prepare import prepare_corpus
from masklab.data.text import TextBlocksData, pack_sequences, read_corpus
from masklab.tokenizers.text import TextTokenizer
from masklab.train import TrainConfig, fit
from masklab.train.progress import read_metrics


def _bert(tokenizer):
    from masklab.models.mlm import BertForMLM, MLMConfig
    from masklab.models.mlm.bert import BertConfig

    torch.manual_seed(0)
    bert = BertConfig(vocab_size=tokenizer.vocab_size, dim=32, depth=2, heads=2, max_len=32)
    return BertForMLM(MLMConfig(bert=bert, mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids,
                                masking="whole_word"))  # fmt: skip


def test_mlm_from_shards_equals_in_memory(corpus_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    shards = prepare_corpus(corpus_file, tmp_path / "p", vocab_size=60, shard_mb=0.002, workers=2, progress=False)
    tokenizer = TextTokenizer.load(shards / "tokenizer.json")
    pack = dict(sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id)
    encoded = tokenizer.encode_batch(read_corpus(corpus_file).texts, add_special_tokens=False)
    datasets = {
        "memory": TextBlocksData(pack_sequences(encoded, 24, **pack)),
        "shards": ShardBlocksData(PreparedCorpus(shards), 24, **pack),
    }
    cfg = TrainConfig(steps=6, batch_size=8, lr=3e-3, log_every=1, ckpt_every=6, device="cpu")
    models = {}
    for name, data in datasets.items():
        models[name] = _bert(tokenizer)
        fit(models[name], data, cfg, tmp_path / name, model_config=saved_config(models[name]), progress=False)
    losses = {name: [r["loss"] for r in read_metrics(tmp_path / name / "metrics.jsonl")] for name in datasets}
    assert losses["shards"] == losses["memory"] and len(losses["memory"]) == 6
    for key, value in models["memory"].state_dict().items():
        assert torch.equal(models["shards"].state_dict()[key], value), key


def test_lm_windows_from_shards_equal_in_memory(corpus_file, tmp_path):
    shards = prepare_corpus(corpus_file, tmp_path / "p", tokenizer_kind="char", lowercase=False, shard_mb=0.002,
                            workers=1, progress=False)  # fmt: skip
    tokenizer = TextTokenizer.load(shards / "tokenizer.json")
    stream = token_stream(tokenizer, read_corpus(corpus_file).texts, separator=tokenizer.sep_id)
    train_mem, val_mem = split_by_position(stream, 0.1)
    train_span, val_span = TokenSpan(PreparedCorpus(shards)).split(0.1)
    for mem, span, stride in ((train_mem, train_span, 1), (val_mem, val_span, 16)):
        a, b = LMWindows(mem, 16, stride=stride), LMWindows(span, 16, stride=stride)
        assert len(a) == len(b)
        indices = torch.randperm(len(a), generator=torch.Generator().manual_seed(0))[:64]
        assert torch.equal(a.get_batch(indices)["ids"], b.get_batch(indices)["ids"])
