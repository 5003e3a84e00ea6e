"""Under torchrun every rank trains with rank 0's CPU kernels (2 gloo ranks on CPU): ranks whose probes chose
differently computed the averaged gradients with different kernels, and a resume (which reapplies rank 0's
recorded choice on every rank) was then not bit-identical to the uninterrupted run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("rank_kernels_script.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def test_every_rank_trains_with_rank_0_s_cpu_kernels(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(SCRIPT),
           str(tmp_path / "run")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 trained with attention ['sdpa']" in done.stdout, done.stdout
    assert "rank 1 trained with attention ['sdpa']" in done.stdout, done.stdout
