"""Under torchrun every rank trains on one tokenizer: rank 0 trains it, the other ranks load it.

The ``tokenizers`` WordPiece trainer breaks ties in a per-process random order, so ranks that each trained their
own tokenizer sometimes disagreed (2 of 6 two-rank ``pretrain mlm`` runs), and DDP averaged gradients computed on
different ids; every rank also wrote ``tokenizer.json``. Fast tests of the rank logic, then a real 2-rank run."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from masklab.recipes import rank_tokenizer
from masklab.recipes.rank_tokenizer import drop_handoff, handoff_path, rank_shared_tokenizer
from masklab.tokenizers.text import TextTokenizer

pytest.importorskip("tokenizers")

TEXTS = ["the cat sat on the mat", "a dog and a cat", "the mat of the dog"] * 5
KEY = {"recipe": "test", "data": "builtin:x", "vocab_size": 40}


def _trained():
    return TextTokenizer.train(TEXTS, "wordpiece", vocab_size=40)


def _never():
    raise AssertionError("this rank may not train a tokenizer")


def _rank(monkeypatch, rank, world=2):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))


def test_a_single_process_trains_and_writes_no_handoff(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    want = _trained()
    assert rank_shared_tokenizer(tmp_path, KEY, lambda: want) is want
    assert list(tmp_path.iterdir()) == []


def test_rank0_trains_once_and_hands_the_tokenizer_over(tmp_path, monkeypatch):
    _rank(monkeypatch, 0)
    calls = []
    tok = rank_shared_tokenizer(tmp_path, KEY, lambda: calls.append(1) or _trained())
    assert calls == [1] and handoff_path(tmp_path, KEY).is_file()
    assert TextTokenizer.load(handoff_path(tmp_path, KEY)).fingerprint == tok.fingerprint
    _rank(monkeypatch, 1)
    assert rank_shared_tokenizer(tmp_path, KEY, _never).fingerprint == tok.fingerprint
    drop_handoff(tmp_path)  # on rank 1: not its file to remove
    assert handoff_path(tmp_path, KEY).is_file()
    _rank(monkeypatch, 0)
    drop_handoff(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_other_ranks_wait_for_rank0(tmp_path, monkeypatch):
    _rank(monkeypatch, 1)
    monkeypatch.setattr(rank_tokenizer, "POLL_SECONDS", 0.01)
    want = _trained()
    other = TextTokenizer.train(["zebra quagga okapi"] * 5, "wordpiece", vocab_size=30)
    other.save(handoff_path(tmp_path, {**KEY, "vocab_size": 30}))  # another key's file is not ours

    def rank0_later():
        time.sleep(0.3)
        want.save(handoff_path(tmp_path, KEY))

    writer = threading.Thread(target=rank0_later)
    writer.start()
    started = time.monotonic()
    got = rank_shared_tokenizer(tmp_path, KEY, _never)
    writer.join()
    assert time.monotonic() - started >= 0.25 and got.fingerprint == want.fingerprint


def test_rank0_reuses_a_handoff_left_for_the_same_inputs(tmp_path, monkeypatch):
    # A launch that died before cleaning up left it; rank 1 of this launch may have read it already.
    left = _trained()
    left.save(handoff_path(tmp_path, KEY))
    _rank(monkeypatch, 0)
    assert rank_shared_tokenizer(tmp_path, KEY, _never).fingerprint == left.fingerprint


# --------------------------------------------------------------------------------------- a real 2-rank run
WRAPPER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from masklab.tokenizers.text import TextTokenizer
    from masklab.train.run import Run

    rank, report = os.environ["RANK"], Path(sys.argv[1])
    fingerprint = TextTokenizer.fingerprint.fget

    def record(self):
        value = fingerprint(self)
        with open(report / f"rank{rank}.txt", "a") as f:
            f.write(value + "\\n")
        return value

    TextTokenizer.fingerprint = property(record)
    if rank != "0":  # only rank 0 trains a tokenizer and writes run files
        def refuse(what):
            def call(*args, **kwargs):
                raise RuntimeError(f"rank {rank} called {what}")
            return call
        TextTokenizer.train = refuse("TextTokenizer.train")
        TextTokenizer.save = refuse("TextTokenizer.save")
        Run.write_sidecar = refuse("Run.write_sidecar")
        Run.record_arguments = refuse("Run.record_arguments")
    from masklab.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.slow  # ~20 s each on 2 loaded cores: a torchrun launch of 2 processes
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_two_ranks_train_on_rank0s_tokenizer(kind, tmp_path):
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    out = tmp_path / "run"
    args = (["--preset", "bert-tiny", "--seq-len", "32", "--vocab-size", "500", "--holdout", "0.05"] if kind == "mlm"
            else ["--preset", "gpt-tiny", "--context", "32", "--eval-batches", "2"])  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(tmp_path / "wrapper.py"), str(tmp_path), "pretrain", kind, *args, "--steps", "1", "--batch-size",
           "4", "--data", "builtin:shakespeare", "--device", "cpu", "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    saved = TextTokenizer.load(out / "tokenizer.json").fingerprint
    seen = {rank: set((tmp_path / f"rank{rank}.txt").read_text().split()) for rank in (0, 1)}
    assert seen == {0: {saved}, 1: {saved}}, seen  # one vocabulary on both ranks, the one saved
    info = json.loads((out / ("text.json" if kind == "mlm" else "lm.json")).read_text())
    assert info["tokenizer_sha256"] == saved
    assert (out / "eval.json").is_file() and (out / "checkpoint.safetensors").is_file()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no hand-off file, no lock left
