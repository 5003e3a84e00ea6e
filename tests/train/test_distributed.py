"""DDP and FSDP on CPU (gloo, 2 processes via torchrun) match a single process with the same global batch.

Models: the tiny regression model, a tiny MAE and a tiny BERT MLM (tests/train/ddp_script.py); the per-step
losses, grad norms and masks agree, and a checkpoint written by 2 ranks resumes in 1 process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from masklab.cli._args import TRAIN_FIELDS, add_train_args
from masklab.core.io import load_checkpoint
from masklab.train import TrainConfig
from masklab.train.progress import read_metrics

SCRIPT = Path(__file__).with_name("ddp_script.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def train(out: Path, *, ranks: int, model: str = "tiny", **kwargs) -> None:
    args = [str(SCRIPT), str(out), "--model", model]
    for key, value in kwargs.items():
        if value is not False:  # True: a bare flag; False: left out
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


# Both sides use the global batch 16: 2 ranks x 1 micro-batch of 8 == 1 process x 2 accumulated micro-batches.
STEPS = 8
# Exactly equal on both sides: which positions were masked (the loop seeds every micro-batch's generator from
# its global index, so a micro-batch draws the same noise whichever rank runs it).
MASK_METRICS = ("masked_frac", "mask_digest")


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """The 1-process reference run of a model (trained once per module, shared by the DDP and FSDP tests)."""
    runs: dict[str, Path] = {}

    def get(model: str) -> Path:
        if model not in runs:
            runs[model] = tmp_path_factory.mktemp(f"single-{model}") / "run"
            train(runs[model], ranks=1, model=model, steps=STEPS, batch_size=16, grad_accum=2)
        return runs[model]

    return get


def check_matches_single(run: Path, model: str, single: Path, legs: list[tuple[int, int, bool]]) -> None:
    """Train ``run`` in legs ``(ranks, up to step, fsdp)``, each resuming the previous leg's checkpoint; after
    every leg each step's loss, grad norm and mask equal the uninterrupted 1-process run's, and at the end
    so do the weights."""
    want = read_metrics(single / "metrics.jsonl")
    for i, (ranks, steps, fsdp) in enumerate(legs):
        train(run, ranks=ranks, model=model, steps=steps, batch_size=16, grad_accum=2 // ranks,
              fsdp=fsdp, resume=i > 0)  # fmt: skip
        got = read_metrics(run / "metrics.jsonl")
        assert [r["step"] for r in got] == list(range(1, steps + 1))
        assert_same_steps(got, want[:steps])
    assert legs[-1][1] == STEPS
    assert_same_weights(weights(run), weights(single))


def assert_same_steps(got: list[dict], want: list[dict]) -> None:
    # Losses agree to float rounding only: the reduction order of the gradient average differs (each rank's
    # mean, then an all-reduce / reduce-scatter, vs. accumulating micro-batch gradients in one process).
    for name in ("loss", "grad_norm"):
        torch.testing.assert_close(column(got, name), column(want, name), rtol=1e-5, atol=1e-6, msg=name)
    for name in MASK_METRICS:
        if name in want[0]:
            assert column(got, name).tolist() == column(want, name).tolist(), name


def column(records: list[dict], name: str) -> torch.Tensor:
    return torch.tensor([r[name] for r in records], dtype=torch.float64)


def assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        a, b = got[name], want[name]
        if name.endswith("attn.qkv.bias"):
            # The key bias adds the same q.b_k to every score of a query row, which softmax ignores: its true
            # gradient is 0 and the computed one is rounding noise of either reduction order, which AdamW's
            # normalisation turns into updates of a few 1e-5 after 8 steps. Queries and values stay strict.
            (aq, ak, av), (bq, bk, bv) = a.chunk(3), b.chunk(3)
            torch.testing.assert_close(ak, bk, rtol=0, atol=1e-4, msg=f"{name} (key part)")
            a, b = torch.cat([aq, av]), torch.cat([bq, bv])
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("model", ["tiny", "mae", "mlm", "table"])
def test_two_ranks_equal_one_process_and_resume_on_one(tmp_path, model, single_run):
    # DDP for 5 steps, then the 2-rank checkpoint resumes in 1 process.
    check_matches_single(tmp_path / "run", model, single_run(model), [(2, 5, False), (1, STEPS, False)])


# FSDP2 runs on CPU with gloo. MLM covers per-Block sharding, the tied word embedding and uneven shards (63-row
# vocabulary on 2 ranks); the tiny model (root shard only, (1,)-sized shards) is in the slow set.
@pytest.mark.parametrize("model", [pytest.param("tiny", marks=pytest.mark.slow), "mlm"])
def test_fsdp_two_ranks_equal_one_process_and_resume_on_one(tmp_path, model, single_run):
    # FSDP for 3 steps; FSDP resumes it (full checkpoint -> shards) to step 6; 1 process resumes that to the end.
    legs = [(2, 3, True), (2, 6, True), (1, STEPS, False)]
    check_matches_single(tmp_path / "run", model, single_run(model), legs)


def test_fsdp_option_and_flag():
    parser = argparse.ArgumentParser()
    add_train_args(parser, steps=100, batch_size=8, lr=1e-3)
    from masklab.recipes.common import TrainOptions, train_config

    def options(argv):
        args = parser.parse_args(argv)
        return TrainOptions(**{k: getattr(args, k) for k in TRAIN_FIELDS if getattr(args, k) is not None})

    assert train_config(options(["--out", "x", "--fsdp"]), None, None, default_steps=1).fsdp
    assert not train_config(options(["--out", "x"]), None, None, default_steps=1).fsdp
    assert TrainConfig.from_dict({"fsdp": True}).fsdp  # config.json round trip
    with pytest.raises(ValueError, match="fsdp does not support precision='fp16'"):
        TrainConfig(fsdp=True, precision="fp16")
