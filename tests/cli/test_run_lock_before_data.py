"""``pretrain mae|table|series`` take the run's lock before they read any data (a second writer is refused at
once; ``pretrain mae`` used to write its image index into a run another process was training), and a table run
records its data's absolute path, so ``probe`` / ``embed`` from another folder read the run's own file (a
relative path was looked up from the current folder: another same-named file would have been read)."""

import json
import os
import socket

import numpy as np
import pandas as pd
import pytest

import masklab.data.images
import masklab.data.series
import masklab.data.tables
from masklab.cli import main
from masklab.train.run import LOCK_NAME

KIND_ARGS = {
    "mae": ["--data", "builtin:digits", "--preset", "mae-tiny"],
    "table": ["--data", "builtin:iris"],
    "series": ["--data", "builtin:japanese-vowels"],
}
LOADERS = {"mae": (masklab.data.images, "load_images"), "table": (masklab.data.tables, "load_table"),
           "series": (masklab.data.series, "load_series")}  # fmt: skip


def _held_by_another_process(run):
    run.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}  # a live process, not this one
    (run / LOCK_NAME).write_text(json.dumps(holder))
    return holder


@pytest.mark.parametrize("kind", sorted(KIND_ARGS))
@pytest.mark.parametrize("resume", [False, True])
def test_a_locked_run_is_refused_before_any_data_is_read(kind, resume, tmp_path, capsys, monkeypatch):
    module, name = LOADERS[kind]

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the run's lock was taken")

    monkeypatch.setattr(module, name, refuse)
    run = tmp_path / "run"
    holder = _held_by_another_process(run)
    argv = ["pretrain", kind, *KIND_ARGS[kind], "--out", str(run), "--steps", "1", "--device", "cpu"]
    assert main(argv + (["--resume"] if resume else [])) == 2
    err = capsys.readouterr().err
    assert f"{run} is being written by process {holder['pid']} on {holder['host']}" in err, err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing written, the holder's lock kept
    assert json.loads((run / LOCK_NAME).read_text()) == holder


@pytest.mark.parametrize("kind", sorted(KIND_ARGS))
def test_a_failed_start_leaves_no_run_directory(kind, tmp_path, capsys):
    out = tmp_path / "new" / "run"
    args = [*KIND_ARGS[kind][2:], "--data", str(tmp_path / "missing.csv")]
    assert main(["pretrain", kind, *args, "--out", str(out), "--steps", "1"]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []


def test_a_table_run_reads_its_own_file_from_another_folder(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    train_dir, elsewhere = tmp_path / "train", tmp_path / "elsewhere"
    train_dir.mkdir()
    elsewhere.mkdir()
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=(x[:, 0] > 0).astype(int))
    frame.to_csv(train_dir / "t.csv", index=False)
    frame.assign(a=-frame["a"]).to_csv(elsewhere / "t.csv", index=False)  # same name, other values
    run = tmp_path / "run"
    monkeypatch.chdir(train_dir)
    assert main(["pretrain", "table", "--data", "t.csv", "--label", "y", "--steps", "2", "--out", str(run)]) == 0
    assert json.loads((run / "table.json").read_text())["data"] == str(train_dir / "t.csv")
    own = main(["embed", str(run), "-o", str(tmp_path / "own.npy")])
    monkeypatch.chdir(elsewhere)
    assert own == main(["embed", str(run), "-o", str(tmp_path / "there.npy")]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(tmp_path / "own.npy"), np.load(tmp_path / "there.npy"))


@pytest.mark.parametrize("setting", [("device", "cuda:99"), ("env", "banana")])
def test_an_unusable_device_or_kernel_setting_leaves_no_run_directory(setting, tmp_path, capsys, monkeypatch):
    # It was refused only inside training, after arguments.json and data.json were written.
    out = tmp_path / "new" / "run"
    argv = ["pretrain", "mae", *KIND_ARGS["mae"], "--out", str(out), "--steps", "1"]
    if setting[0] == "device":
        argv += ["--device", setting[1]]
    else:
        monkeypatch.setenv("MASKLAB_CPU_ATTENTION", setting[1])
    assert main(argv) == 2
    assert setting[1] in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []
