"""``Run``: the exclusive lock (a live writer refuses a second one; a dead writer's lock is stale), sidecars,
and the resume check that names every differing key and writes nothing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from masklab.core.io import save_checkpoint
from masklab.train.run import LOCK_NAME, ResumeMismatchError, Run, RunLockedError


def _recorded(tmp_path, **train):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    config = {"masklab_version": "0", "kind": "toy", "model": {"width": 3, "depth": 2},
              "train": {"steps": 10, "lr": 0.001, "seed": 0, **train}}  # fmt: skip
    (run.path / "config.json").write_text(json.dumps(config))
    save_checkpoint(run.path / "checkpoint.safetensors", {"model.w": torch.zeros(2)}, {"step": "10"})  # resume reads it
    run.write_sidecar("data.json", {"spec": "builtin:digits", "num_train": 100})
    return run, config


SECOND_WRITER = """
import sys
from masklab.train.run import Run, RunLockedError
try:
    with Run(sys.argv[1]).lock():
        print("took it")
except RunLockedError as err:
    print(err)
"""


def test_lock_refuses_a_second_writer_and_names_the_holder(tmp_path):
    run = Run(tmp_path / "run")
    src = str(Path(__file__).resolve().parents[2] / "src")
    second = [sys.executable, "-c", SECOND_WRITER, str(run.path)]
    with run.lock():
        holder = json.loads((run.path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with run.lock():  # re-entrant in the holding process
            pass
        assert (run.path / LOCK_NAME).exists()  # the inner exit does not release the outer hold
        out = subprocess.run(second, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src}).stdout
        assert f"is being written by process {os.getpid()} on {socket.gethostname()}" in out
    assert not (run.path / LOCK_NAME).exists()  # released
    out = subprocess.run(second, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": src}).stdout
    assert out.strip() == "took it"


def test_lock_of_a_dead_process_is_stale(tmp_path):
    run = Run(tmp_path / "run")
    run.path.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (run.path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": 0}))
    with run.lock():
        assert json.loads((run.path / LOCK_NAME).read_text())["pid"] == os.getpid()
    # A live process on another host is not ours to judge: held.
    (run.path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": "elsewhere", "since": 0}))
    with pytest.raises(RunLockedError, match="elsewhere"), run.lock():
        pass


def test_resume_check_names_each_differing_key_and_writes_nothing(tmp_path):
    run, _ = _recorded(tmp_path)
    before = (run.path / "config.json").read_bytes(), (run.path / "data.json").read_bytes()
    new = {"kind": "toy", "model": {"width": 4, "depth": 2}, "train": {"steps": 10, "lr": 0.01, "seed": 0}}
    with pytest.raises(ResumeMismatchError) as err:
        run.check_resume(new, {"data.json": {"spec": "builtin:digits", "num_train": 90}})
    assert err.value.keys == ["data.json.num_train", "model.width", "train.lr"]
    assert "model.width: recorded 3, given 4" in str(err.value)
    assert ((run.path / "config.json").read_bytes(), (run.path / "data.json").read_bytes()) == before


def test_resume_check_allows_a_longer_run_and_equal_settings(tmp_path):
    run, config = _recorded(tmp_path)
    same = {k: config[k] for k in ("kind", "model", "train")}
    run.check_resume(same, {"data.json": {"spec": "builtin:digits", "num_train": 100}})
    run.check_resume({**same, "train": {**same["train"], "steps": 50}})  # --steps extends
    with pytest.raises(ResumeMismatchError, match=r"train\.steps"):
        run.check_resume({**same, "train": {**same["train"], "steps": 50}}, allow=())
    with pytest.raises(ResumeMismatchError, match=r"train\.betas"):  # a key only one side has is a difference
        run.check_resume({**same, "train": {**same["train"], "betas": [0.9, 0.95]}})


def test_resume_without_checkpoint_and_fresh_over_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint\.safetensors"):
        Run(tmp_path / "empty").check_resume({"kind": "toy"})
    run, _ = _recorded(tmp_path)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        run.check_fresh()


def test_sidecars_and_kind(tmp_path):
    run, _ = _recorded(tmp_path)
    assert run.kind() == "toy" and run.read_sidecar("data.json")["num_train"] == 100
    assert run.read_sidecar("absent.json") == {}
    (run.path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        run.read_sidecar("bad.json")
    with pytest.raises(FileNotFoundError, match="is not a masklab run"):
        Run(tmp_path).kind()


def test_an_error_inside_a_nested_lock_is_not_chained_to_the_lock_check(tmp_path):
    # The lock is re-entrant: the inner holder used to yield inside `except FileExistsError`, so every error
    # in a training run (whose recipe holds the lock around train_run, which takes it again) was printed with
    # "During handling of the above exception ... FileExistsError: .../.lock".
    run = Run(tmp_path / "run")
    with pytest.raises(RuntimeError) as caught, run.lock(), run.lock():
        raise RuntimeError("boom")
    assert caught.value.__context__ is None
    assert not (tmp_path / "run" / ".lock").exists()  # the outer holder released it
