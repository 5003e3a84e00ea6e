"""SIGKILL a training process mid-run, resume it, and get bit-identical weights to an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from masklab.core.io import CheckpointError, load_checkpoint
from masklab.train.progress import read_metrics

SCRIPT = Path(__file__).with_name("train_tiny.py")
STEPS = 300


def _start(out_dir: Path, *extra: str) -> subprocess.Popen:
    # stderr goes to a file: an unread pipe could fill up and stall the child.
    cmd = [sys.executable, str(SCRIPT), str(out_dir), "--steps", str(STEPS), "--ckpt-every", "20", "--no-plot", *extra]
    with (out_dir.parent / f"{out_dir.name}.log").open("ab") as log:  # the child keeps its own copy of the fd
        return subprocess.Popen(cmd, stdout=log, stderr=log)


def _finish(proc: subprocess.Popen, out_dir: Path) -> None:
    assert proc.wait(timeout=120) == 0, (out_dir.parent / f"{out_dir.name}.log").read_text()


def _checkpoint_step(out_dir: Path) -> int:
    try:
        return int(load_checkpoint(out_dir / "checkpoint.safetensors", verify=False)[1]["step"])
    except CheckpointError:  # not written yet
        return -1


def _kill_after_a_checkpoint(victim: subprocess.Popen, run_dir: Path) -> int:
    """SIGKILL ``victim`` once it has checkpointed AND logged later steps (so resume must rewind
    metrics.jsonl); returns the step of the checkpoint it left behind."""
    deadline = time.monotonic() + 240  # importing torch alone can take a minute on a loaded 2-core machine
    while True:
        assert victim.poll() is None, "the run finished before it could be killed; the test would be vacuous"
        assert time.monotonic() < deadline, "no checkpoint appeared within 240 s"
        step = _checkpoint_step(run_dir)
        logged = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")]
        if step >= 20 and logged and logged[-1] > step:
            break
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=30) == -signal.SIGKILL
    _, metadata = load_checkpoint(run_dir / "checkpoint.safetensors")  # intact, hash verified
    killed_at = int(metadata["step"])
    assert 20 <= killed_at < STEPS
    return killed_at


# workers=2: batches built in DataLoader worker processes; the reference is built in-process, so the test
# also shows the worker count changes nothing.
@pytest.mark.parametrize("workers", ["0", "2"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, workers):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    reference = _start(ref_dir)
    # 10 ms per step makes the full run take > 3 s, so the kill below lands mid-run.
    victim = _start(run_dir, "--step-delay", "0.01", "--workers", workers)
    try:
        killed_at = _kill_after_a_checkpoint(victim, run_dir)
        _finish(_start(run_dir, "--resume", "--workers", workers), run_dir)
        _finish(reference, ref_dir)
    finally:
        for proc in (victim, reference):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    ref, _ = load_checkpoint(ref_dir / "checkpoint.safetensors")
    resumed, metadata = load_checkpoint(run_dir / "checkpoint.safetensors")
    assert metadata["step"] == str(STEPS)
    assert ref.keys() == resumed.keys()
    for name in ref:  # model weights, AdamW state, RNG states
        assert torch.equal(ref[name], resumed[name]), f"{name} differs after resuming from step {killed_at}"
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert steps == sorted(set(steps)) == [r["step"] for r in read_metrics(ref_dir / "metrics.jsonl")]
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
