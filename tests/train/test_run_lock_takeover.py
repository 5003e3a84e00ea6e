"""Two starts that find the same stale lock (its writer was killed) take it over one at a time: exactly one of
them writes the run (both could, when each unlinked the lock and the other's new one); an unreadable lock says
so instead of naming process '?'."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import time

import pytest

from masklab.train.run import LOCK_NAME, Run, RunLockedError


def _writer(path, barrier, results):
    barrier.wait()
    try:
        with Run(path).lock():
            start = time.monotonic()
            time.sleep(0.1)
            results.put(("got", start, time.monotonic()))
    except RunLockedError:
        results.put(("refused", 0.0, 0.0))


def test_two_starts_taking_over_a_stale_lock_get_one_writer(tmp_path):
    ctx = mp.get_context("fork")
    both = 0
    for trial in range(30):
        run = tmp_path / str(trial)
        run.mkdir()
        dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "since": 0.0}  # above pid_max: never alive
        (run / LOCK_NAME).write_text(json.dumps(dead))
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_writer, args=(str(run), barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        answers = sorted(results.get(timeout=10) for _ in procs)
        # Both may write the run one after the other (the first finished before the second looked again);
        # never at the same time.
        held = [(start, end) for answer, start, end in answers if answer == "got"]
        both += len(held) == 2 and held[0][1] > held[1][0]
        assert not (run / LOCK_NAME).exists()  # the writer removed its own lock
    assert both == 0


def test_an_unreadable_lock_says_so(tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    (run.path / LOCK_NAME).write_text("")  # a writer killed between creating the lock and writing it
    with pytest.raises(RunLockedError, match=r"its lock .*\.lock is unreadable \(written \d+ s ago"), run.lock():
        pass
    old = time.time() - 120
    os.utime(run.path / LOCK_NAME, (old, old))
    with run.lock():  # a minute later it is stale and taken over
        assert json.loads((run.path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_stale_lock_removed_by_another_start_meanwhile_is_retried(tmp_path, monkeypatch):
    # The other start took the stale lock over, wrote its run and removed its own lock between this start's
    # look at the lock and its read of it: nothing is left to remove, and the retry takes the lock (it raised
    # FileNotFoundError).
    run = Run(tmp_path / "run")
    run.path.mkdir()
    lock = run.path / LOCK_NAME
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "since": 0.0}))
    read_bytes = type(lock).read_bytes

    def vanishing(self):
        if self == lock:
            monkeypatch.undo()
            self.unlink()
        return read_bytes(self)

    monkeypatch.setattr(type(lock), "read_bytes", vanishing)
    with run.lock():
        assert json.loads(lock.read_text())["pid"] == os.getpid()
