"""``masklab prepare`` holds its output folder's lock for its whole run: two prepares into one folder, each with a
tokenizer it trained, made shards of two vocabularies that loaded without error (2 of 14 tries). A second
prepare is refused (exit 2 from the CLI, naming the folder and the holder) and touches nothing; a killed
prepare's lock is taken over; the lock is removed at the end, also when the prepare fails."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import time

import pytest

from masklab.cli import main
from masklab.core.lock import LOCK_NAME
from masklab.data.shards import PreparedCorpus
from masklab.data.shards.format import check_tokenizer, read_index
from masklab.data.shards.lock import PrepareLockedError
from masklab.data.shards.prepare import prepare_corpus

pytest.importorskip("tokenizers")

# No --tokenizer: each prepare trains its own, the case that mixed two vocabularies in one folder.
SMALL = dict(shard_mb=0.002, sample_mb=0.01, vocab_size=60, workers=1, progress=False)
DEAD = 2**22 + 12345  # above pid_max: never a live process


def _preparer(corpus, out, barrier, results):
    barrier.wait()
    try:
        start = time.monotonic()
        prepare_corpus(corpus, out, on_shard=lambda k: time.sleep(0.01), **SMALL)
        results.put(("done", start, time.monotonic(), ""))
    except PrepareLockedError as err:
        results.put(("refused", 0.0, 0.0, str(err)))
    except Exception as err:  # e.g. one prepare's file renamed away by the other's
        results.put(("failed", 0.0, 0.0, repr(err)))


def test_two_prepares_into_one_folder_take_turns(corpus_file, tmp_path):
    ctx = mp.get_context("fork")
    for trial in range(4):
        out = tmp_path / str(trial) / "out"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_preparer, args=(str(corpus_file), str(out), barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        answers = sorted(results.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(30)
        assert all(answer != "failed" for answer, *_ in answers), answers
        done = [(start, end) for answer, start, end, _ in answers if answer == "done"]
        assert done, answers
        # Both may finish one after the other (the second then reuses the finished folder); never at once.
        assert not (len(done) == 2 and done[0][1] > done[1][0]), f"trial {trial}: two prepares ran at once"
        for answer, _, _, message in answers:
            if answer == "refused":
                assert message.startswith(f"{out} is being prepared by process "), message
                assert f"on {socket.gethostname()} (lock {out / LOCK_NAME})" in message and "\n" not in message
        check_tokenizer(out, read_index(out))  # the shards' vocabulary is the folder's tokenizer
        PreparedCorpus(out)
        assert not (out / LOCK_NAME).exists()


def _folder_state(root):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.iterdir())}


@pytest.mark.parametrize("finished", [False, True])
def test_a_held_folder_is_refused_by_the_cli_and_left_untouched(corpus_file, tmp_path, capsys, finished):
    out = tmp_path / "out"
    if finished:
        prepare_corpus(corpus_file, out, **SMALL)
    else:
        out.mkdir()
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}  # a live process, not this one
    (out / LOCK_NAME).write_text(json.dumps(holder))
    before = _folder_state(out)
    argv = ["prepare", "--data", str(corpus_file), "--out", str(out), "--vocab-size", "60", "--shard-mb", "0.002",
            "--workers", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    want = (
        f"masklab: error: {out} is being prepared by process {holder['pid']} on {holder['host']} "
        f"(lock {out / LOCK_NAME}); wait for it to finish, or delete the lock if that process is gone\n"
    )
    assert err == want  # one line
    assert _folder_state(out) == before  # nothing written, the holder's lock kept


def test_a_killed_prepares_lock_is_taken_over_and_removed_at_the_end(corpus_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": DEAD, "host": socket.gethostname(), "since": 0.0}))
    seen: list[int] = []

    def during(k):
        seen.append(json.loads((out / LOCK_NAME).read_text())["pid"])

    prepare_corpus(corpus_file, out, on_shard=during, **SMALL)
    assert seen and set(seen) == {os.getpid()}  # held by this prepare throughout
    assert not (out / LOCK_NAME).exists()
    PreparedCorpus(out)


def test_the_lock_is_removed_when_a_prepare_fails(corpus_file, tmp_path):
    out = tmp_path / "out"

    def interrupt(k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_corpus(corpus_file, out, on_shard=interrupt, **SMALL)
    assert not (out / LOCK_NAME).exists() and (out / "shard-00000.json").is_file()  # the finished shard kept
    prepare_corpus(corpus_file, out, **SMALL)  # continues
    # A prepare that fails before writing anything leaves no folder behind (the lock made it).
    missing = tmp_path / "new" / "out"
    with pytest.raises(FileNotFoundError, match="no such file"):
        prepare_corpus(tmp_path / "missing.txt", missing, **SMALL)
    assert not (tmp_path / "new").exists()


def test_a_training_runs_prepared_folder_is_locked(corpus_file, tmp_path, capsys):
    # pretrain prepares into RUN/prepared while holding RUN/.lock (another file: no deadlock with itself); a
    # prepare into that folder from another process is refused, and so is a run whose folder another prepares.
    run = tmp_path / "run"
    (run / "prepared").mkdir(parents=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}
    (run / "prepared" / LOCK_NAME).write_text(json.dumps(holder))
    argv = ["pretrain", "clm", "--data", str(corpus_file), "--out", str(run), "--steps", "1", "--device", "cpu",
            "--preset", "gpt-tiny", "--context", "32", "--batch-size", "4"]  # fmt: skip
    assert main(argv) == 2
    assert f"{run / 'prepared'} is being prepared by process {holder['pid']}" in capsys.readouterr().err
    assert not (run / LOCK_NAME).exists()  # the run's own lock released
    (run / "prepared" / LOCK_NAME).unlink()
    assert main(argv) == 0
    assert not (run / LOCK_NAME).exists() and not (run / "prepared" / LOCK_NAME).exists()
