"""Ctrl-C between two metrics records: the record is shown, not logged, and the open window is checkpointed, so
a resumed run's ``metrics.jsonl`` equals an uninterrupted run's (it held an extra record at the stop, and the
next record covered one step instead of ``log_every``)."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from train_tiny import TinyData, TinyModel, make_config

from masklab.train import fit
from masklab.train.loop import TrainingInterrupted
from masklab.train.progress import read_metrics

KEYS = ("step", "loss", "lr", "grad_norm")


def _fit(out, *, resume=False, stop_at=None):
    torch.manual_seed(0)
    model = TinyModel()

    def on_step(step, values):
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the loop finishes the step, checkpoints and stops

    cfg = make_config(steps=12, log_every=5, ckpt_every=100)
    fit(model, TinyData(), cfg, out, model_config=model.config(), resume=resume, progress=False, on_step=on_step)


def test_a_resumed_run_logs_the_records_of_an_uninterrupted_one(tmp_path):
    _fit(tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        _fit(tmp_path / "run", stop_at=7)
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [5]  # step 7 shown only
    _fit(tmp_path / "run", resume=True)
    ref = [{k: r[k] for k in KEYS} for r in read_metrics(tmp_path / "ref" / "metrics.jsonl")]
    got = [{k: r[k] for k in KEYS} for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in ref] == [5, 10, 12]
    assert got == ref
