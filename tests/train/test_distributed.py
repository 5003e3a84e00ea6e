"""DDP on CPU (gloo, 2 processes via torchrun) matches a single process with the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from masklab.train import load_checkpoint
from masklab.train.progress import read_metrics

SCRIPT = Path(__file__).with_name("ddp_script.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def train(out: Path, *, ranks: int, model: str = "tiny", **kwargs) -> None:
    args = [str(SCRIPT), str(out), "--model", model]
    for key, value in kwargs.items():
        args += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", *args]
    else:
        cmd = [sys.executable, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def weights(run: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run / "metrics.jsonl")]


@pytest.mark.parametrize("model", ["tiny"])
def test_two_ranks_equal_one_process_and_resume_on_one(tmp_path, model):
    # Global batch 16 on both sides: 2 ranks x 1 micro-batch of 8 == 1 process x 2 accumulated micro-batches.
    train(tmp_path / "single", ranks=1, model=model, steps=6, batch_size=16, grad_accum=2)
    train(tmp_path / "ddp", ranks=2, model=model, steps=6, batch_size=16, grad_accum=1)
    want, got = losses(tmp_path / "single"), losses(tmp_path / "ddp")
    assert len(want) == len(got) == 6
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=1e-6)
    single, ddp = weights(tmp_path / "single"), weights(tmp_path / "ddp")
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)

    # A checkpoint written by 2 ranks at step 3 resumes in 1 process and ends where the single run ended.
    train(tmp_path / "half", ranks=2, model=model, steps=3, batch_size=16, grad_accum=1)
    train(tmp_path / "half", ranks=1, model=model, steps=6, batch_size=16, grad_accum=2, resume=True)
    resumed = weights(tmp_path / "half")
    for name in single:
        torch.testing.assert_close(resumed[name], single[name], rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(torch.tensor(losses(tmp_path / "half")), torch.tensor(want), rtol=1e-5, atol=1e-6)
