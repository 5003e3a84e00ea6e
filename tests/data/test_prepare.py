"""masklab prepare: byte-identical shards across runs and worker counts; rows equal the in-memory packing."""

import json

import numpy as np
import pytest
import torch

from masklab.data.shards import PreparedCorpus, ShardError
from masklab.data.shards.datasets import ShardBlocksData
from masklab.data.shards.prepare import prepare_corpus
from masklab.data.text import TextBlocksData, pack_sequences, read_corpus
from masklab.tokenizers.text import TextTokenizer

SMALL = dict(shard_mb=0.002, progress=False)


def folder_bytes(root):
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def tokenizer_file(corpus_file, tmp_path_factory):
    # Hugging Face `tokenizers` breaks count ties in hash order, so two trainings on one sample can differ:
    # byte-identity is a property of the encoding given a tokenizer (a prepare keeps the one it trained).
    tokenizer = TextTokenizer.train(read_corpus(corpus_file).texts, vocab_size=60)
    return tokenizer.save(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def prepared(corpus_file, tokenizer_file, tmp_path_factory):
    return prepare_corpus(
        corpus_file, tmp_path_factory.mktemp("p") / "one", tokenizer=tokenizer_file, workers=1, **SMALL
    )


def test_prepare_is_byte_identical_across_runs_and_worker_counts(corpus_file, tokenizer_file, prepared, tmp_path):
    index = json.loads((prepared / "index.json").read_text())
    assert len(index["shards"]) >= 4 and index["token_dtype"] == "<u2"
    again = prepare_corpus(corpus_file, tmp_path / "again", tokenizer=tokenizer_file, workers=1, **SMALL)
    two = prepare_corpus(corpus_file, tmp_path / "two", tokenizer=tokenizer_file, workers=2, **SMALL)
    reference = folder_bytes(prepared)
    assert folder_bytes(again) == reference
    assert folder_bytes(two) == reference


def test_shard_rows_equal_in_memory_packing(corpus_file, prepared):
    tokenizer = TextTokenizer.load(prepared / "tokenizer.json")
    texts = read_corpus(corpus_file).texts
    pack = dict(sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id, cls_id=tokenizer.cls_id)
    blocks = pack_sequences(tokenizer.encode_batch(texts, add_special_tokens=False), 24, **pack)
    memory = TextBlocksData(blocks)
    shards = ShardBlocksData(PreparedCorpus(prepared), 24, **pack)
    assert len(shards) == len(memory)
    everything = torch.arange(len(memory))
    for batch in (everything, torch.tensor([len(memory) - 1, 0, 5]), torch.tensor([3, 1])):
        want, got = memory.get_batch(batch), shards.get_batch(batch)
        assert want.keys() == got.keys()
        for key in want:
            assert torch.equal(want[key], got[key]), key


def test_stream_equals_token_stream(corpus_file, prepared):
    from masklab.data.lm import token_stream

    tokenizer = TextTokenizer.load(prepared / "tokenizer.json")
    want = token_stream(tokenizer, read_corpus(corpus_file).texts, separator=tokenizer.sep_id)
    corpus = PreparedCorpus(prepared)
    got, _ = corpus.read(0, len(corpus))
    assert np.array_equal(got, want.numpy())
    starts = corpus.document_starts()
    assert len(starts) == len(read_corpus(corpus_file).texts) and starts[0] == 0


def test_corrupt_or_truncated_shard_is_named(prepared, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    shard = copy / "shard-00001.bin"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"shard-00001\.bin is corrupted"):
        PreparedCorpus(copy)
    shard.write_bytes(bytes(data[:-4]))
    with pytest.raises(ShardError, match=r"shard-00001\.bin is truncated"):
        PreparedCorpus(copy)
    (copy / "index.json").unlink()
    with pytest.raises(ShardError, match="not a prepared corpus"):
        PreparedCorpus(copy)


def test_sigkill_during_prepare_then_rerun_gives_the_same_shards(corpus_file, tokenizer_file, prepared, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = Path(__file__).with_name("prepare_script.py")
    out = tmp_path / "killed"
    cmd = [sys.executable, str(script), str(corpus_file), str(out), "--tokenizer", str(tokenizer_file)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # Its own process group, killed whole: a SIGKILL of the parent alone left its tokenising workers behind,
    # asleep for good (they outlived the test run).
    victim = subprocess.Popen([*cmd, "--shard-delay", "0.3"], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("shard-*.json"))) < 2:
            assert victim.poll() is None, "prepare ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared within 60 s"
            time.sleep(0.02)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
    assert not (out / "index.json").exists(), "the kill landed after prepare finished; the test would be vacuous"
    done_before = len(list(out.glob("shard-*.json")))
    with pytest.raises(ShardError, match=r"no index\.json"):
        PreparedCorpus(out)
    assert subprocess.run(cmd, env=env, timeout=120).returncode == 0
    assert done_before < len(json.loads((out / "index.json").read_text())["shards"])
    assert folder_bytes(out) == folder_bytes(prepared)


def test_large_dataset_sampler_visits_every_example_once_per_epoch(monkeypatch):
    import masklab.train.batches as batches

    monkeypatch.setattr(batches, "MAX_MATERIALISED", 10)
    sampler = batches.EpochSampler(97, seed=1)
    order = torch.cat([sampler.next_indices(7) for _ in range(28)])  # 196 = 2 epochs + 2
    assert sorted(order[:97].tolist()) == list(range(97)) and sorted(order[97:194].tolist()) == list(range(97))
    assert not torch.equal(order[:97], order[97:194])


def test_full_disk_stops_prepare_with_one_line_and_a_rerun_resumes(
    corpus_file, tokenizer_file, prepared, tmp_path, monkeypatch, capsys
):
    import errno

    import masklab.core.io as io
    from masklab.cli import main
    from masklab.data.shards.format import file_sha256, shard_name

    write = io.atomic_write_bytes
    failing = shard_name(3)

    def full_disk(path, data):  # runs in the (forked) prepare workers
        if path.name == failing:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write(path, data)

    monkeypatch.setattr(io, "atomic_write_bytes", full_disk)
    out = tmp_path / "full"
    argv = ["prepare", "--data", str(corpus_file), "--out", str(out), "--tokenizer", str(tokenizer_file),
            "--workers", "2", "--shard-mb", "0.002"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("masklab: error: cannot write ")
    assert str(out / failing) in err and "No space left on device" in err and "rerun" in err
    assert not (out / "index.json").exists() and not (out / failing).exists()
    assert not list(out.glob(".*.tmp")), "a half-written temp file was left behind"
    finished = sorted(out.glob("shard-*.json"))
    assert {p.stem for p in finished} >= {shard_name(k)[:-4] for k in range(3)}
    for marker in finished:  # every shard that has its marker is complete and matches its sha256
        info = json.loads(marker.read_text())
        assert (
            file_sha256(marker.with_suffix(".bin"))
            == info["sha256"]
            == json.loads((prepared / marker.name).read_text())["sha256"]
        )
    monkeypatch.setattr(io, "atomic_write_bytes", write)  # space freed
    assert main(argv) == 0
    assert folder_bytes(out) == folder_bytes(prepared)
    PreparedCorpus(out)  # every sha256 in the index verifies


def test_under_torchrun_only_rank0_prepares_the_run_cache(corpus_file, tokenizer_file, prepared, monkeypatch, tmp_path):
    # Two ranks preparing RUN/prepared at once found each other's half-written folder (CI, 2026-12-02).
    import threading

    from masklab.data.shards import prepared_for_run

    run_dir = tmp_path / "run"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    got: list = []
    waiter = threading.Thread(
        target=lambda: got.append(prepared_for_run(str(corpus_file), run_dir, tokenizer=tokenizer_file, workers=1))
    )
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive() and not run_dir.exists()  # rank 1 waits and writes nothing
    monkeypatch.setenv("RANK", "0")
    done = prepared_for_run(str(corpus_file), run_dir, tokenizer=tokenizer_file, workers=1)
    waiter.join(10.0)
    assert not waiter.is_alive() and got == [done]
    ours, reference = PreparedCorpus(done), PreparedCorpus(prepared)
    assert len(ours) == len(reference)
    assert np.array_equal(ours.read(0, len(ours))[0], reference.read(0, len(reference))[0])
