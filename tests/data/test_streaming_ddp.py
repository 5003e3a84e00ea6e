"""2 gloo ranks, each building batches from a prepared corpus in 2 DataLoader workers, == 1 process (in-process
batches) with 2-fold accumulation: same per-step losses and masks, same weights; the 2-rank run resumes on 1."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from test_distributed import STEPS, assert_same_steps, assert_same_weights, train, weights

from masklab.data.shards.prepare import prepare_corpus
from masklab.train.progress import read_metrics

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable"),
    pytest.mark.slow,  # ~70 s on 2 loaded cores: 3 torchrun launches
]


def test_two_ranks_with_workers_equal_one_process(corpus_file, tmp_path):
    shards = prepare_corpus(corpus_file, tmp_path / "prepared", vocab_size=60, shard_mb=0.002, workers=2,
                            progress=False)  # fmt: skip
    common = dict(model="mlm-shards", shards=shards, batch_size=16)
    train(tmp_path / "single", ranks=1, steps=STEPS, grad_accum=2, **common)
    run = tmp_path / "ddp"
    train(run, ranks=2, steps=5, grad_accum=1, workers=2, **common)
    train(run, ranks=1, steps=STEPS, grad_accum=2, workers=1, resume=True, **common)
    got, want = read_metrics(run / "metrics.jsonl"), read_metrics(tmp_path / "single" / "metrics.jsonl")
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert_same_steps(got, want)
    assert_same_weights(weights(run), weights(tmp_path / "single"))
