"""``kill -9`` of a ``prepare --workers N`` left its pool workers alive, blocked for good on the task queue (each
holds the queue's write end too, so they never see it close): they now exit when their parent dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("tokenizers")
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the workers through /proc")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ..., starttime), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _children(parent: int) -> dict[int, str]:
    """{pid: start time} of the live children of ``parent``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == parent:
            found[int(entry.name)] = fields[19]
    return found


def _alive(pid: int, started: str) -> bool:
    fields = _stat(pid)  # a zombie (dead, not yet reaped by its new parent) is gone; so is a reused pid
    return fields is not None and fields[0] != "Z" and fields[19] == started


def test_workers_exit_when_a_killed_prepare_leaves_them(corpus_file, tmp_path):
    script = Path(__file__).with_name("prepare_script.py")
    out = tmp_path / "out"
    cmd = [sys.executable, str(script), str(corpus_file), str(out), "--workers", "2", "--shard-delay", "0.3"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # Its own process group: whatever the test leaves (the orphans, when it fails) is killed at the end.
    victim = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "shard-00000.json").exists():  # the pool has started
            assert victim.poll() is None, "prepare ended before it could be killed"
            assert time.monotonic() < deadline, "no shard appeared within 60 s"
            time.sleep(0.02)
        workers = _children(victim.pid)
        assert len(workers) == 2, workers
        os.kill(victim.pid, signal.SIGKILL)  # the parent alone, as kill -9 PID does
        victim.wait(timeout=30)
        assert not (out / "index.json").exists(), "the kill landed after prepare finished; the test is vacuous"
        deadline = time.monotonic() + 5
        left = list(workers)
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [pid for pid, started in workers.items() if _alive(pid, started)]
        assert left == [], f"workers {left} outlived their killed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


WATCHED_CHILD = """
import os, sys, time
from masklab.data.shards import workers
workers._kernel_kills_orphan = lambda: False  # as where prctl is missing: the getppid() check alone
if os.fork() == 0:
    workers.die_with_parent(os.getppid())
    print(os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def test_without_prctl_a_worker_still_exits_with_its_parent():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", WATCHED_CHILD], env=env, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        started = _stat(child)[19]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _alive(child, started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child, started), "the child outlived its killed parent"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
