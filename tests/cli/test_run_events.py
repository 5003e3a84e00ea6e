"""Ordinary events end a training command with one line and a true statement about its checkpoint: a full disk,
an unusable ``--out``, bad numbers (the same words for every kind), too little data, Ctrl-C and a ``--minutes``
deadline. No traceback reaches the user in any of them."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from masklab.cli import main
from masklab.train.checkpoint import CHECKPOINT_NAME, load_model, load_run

SRC = Path(__file__).resolve().parents[2] / "src"
KINDS = ("mae", "mlm", "clm", "table", "series")


def _csv(path: Path, rows: int = 48) -> Path:
    lines = ["a,b,c,colour"] + [f"{i % 7},{(i * 3) % 11 / 10},{i % 5 * 2.5},{'rgb'[i % 3]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _table_args(data: Path, run: Path | str, *more: str) -> list[str]:
    return ["pretrain", "table", "--data", str(data), "--out", str(run), "--preset", "table-tiny", "--device", "cpu",
            "--batch-size", "8", *more]  # fmt: skip


def _one_line_error(err: str) -> str:
    """The error line: the last line of stderr, the only error (training's notes may come before it)."""
    assert "Traceback" not in err and err.endswith("\n") and err.count("masklab: error: ") == 1, err
    last = err.splitlines()[-1]
    assert last.startswith("masklab: error: "), err
    return last


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import safetensors.torch
    from safetensors import SafetensorError

    real_save, calls = safetensors.torch.save_file, []

    def save_file(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 1:
            return real_save(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(b"\0" * 100)  # a partial write, then the error safetensors raises for ENOSPC
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                              'left on device" })')  # fmt: skip

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    run = tmp_path / "run"
    assert main(_table_args(_csv(tmp_path / "t.csv"), run, "--steps", "12", "--ckpt-every", "5")) == 2
    err = _one_line_error(capsys.readouterr().err)
    checkpoint = run / CHECKPOINT_NAME
    assert f"could not write {checkpoint} at step 10" in err and "no space left on device" in err.lower(), err
    assert f"{checkpoint} holds step 5" in err, err
    assert load_run(run).step == 5  # intact: the integrity hash is verified on load
    load_model(run)
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("not a run\n")
    assert main(_table_args(_csv(tmp_path / "t.csv"), out, "--steps", "2")) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert f"--out {out} is a file" in err
    assert out.read_text() == "not a run\n"


def test_read_only_out_is_one_line(tmp_path, monkeypatch, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: refuse as a read-only file system would
        real_mkdtemp = tempfile.mkdtemp

        def mkdtemp(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == parent:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real_mkdtemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    try:
        assert main(_table_args(_csv(tmp_path / "t.csv"), parent / "run", "--steps", "2")) == 2
    finally:
        parent.chmod(0o755)
    err = _one_line_error(capsys.readouterr().err)
    assert f"--out {parent / 'run'}: cannot create a directory in {parent}" in err
    assert sorted(parent.iterdir()) == []  # the check leaves nothing behind


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_where_no_directory_can_be_made_is_refused_before_any_work(tmp_path, capsys):
    # os.access says yes for root in /proc; only creating a directory tells the truth
    assert main(_table_args(tmp_path / "missing.csv", "/proc/masklab-run", "--steps", "2")) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert "--out /proc/masklab-run: cannot create a directory in /proc" in err  # not the missing data file


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be an integer >= 1, got 0"),
        ("--lr", "inf", "--lr must be a finite number > 0, got inf"),
        ("--lr", "nan", "--lr must be a finite number > 0, got nan"),
        ("--lr", "0", "--lr must be a finite number > 0, got 0.0"),
        ("--steps", "0", "--steps must be an integer >= 1, got 0"),
        ("--minutes", "-1", "--minutes must be a finite number > 0, got -1.0"),
        ("--warmup", "-1", "--warmup must be an integer >= 0, got -1"),
        ("--ckpt-every", "0", "--ckpt-every must be an integer >= 1, got 0"),
    ],
)
def test_bad_numbers_are_refused_with_the_same_words_on_every_kind(tmp_path, capsys, flag, value, message):
    for kind in KINDS:
        run = tmp_path / kind
        assert main(["pretrain", kind, "--out", str(run), flag, value]) == 2, kind
        assert capsys.readouterr().err == f"masklab: error: {message}\n", kind
        assert not run.exists(), kind  # refused before anything was read or written


def test_train_options_refuse_bad_numbers_from_python():
    from masklab.recipes.common import TrainOptions

    with pytest.raises(ValueError, match="--batch-size must be an integer >= 1, got 0"):
        TrainOptions(batch_size=0)
    with pytest.raises(ValueError, match="--lr must be a finite number > 0, got inf"):
        TrainOptions(lr=float("inf"))


def test_a_one_row_table_is_refused_naming_the_file(tmp_path, capsys):
    data = _csv(tmp_path / "one.csv", rows=1)
    run = tmp_path / "run"
    assert main(_table_args(data, run, "--steps", "3")) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert f"--data {data}: the training data has 1 example(s); at least 2 are needed" in err
    assert not (run / CHECKPOINT_NAME).exists()


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``python -m masklab ARGS`` with SIGINT at its default whatever this process inherited (a job a shell
    without job control started in the background inherits it ignored, and so would the command)."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "masklab", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_exits_130_naming_the_step_the_checkpoint_holds(tmp_path):
    run = tmp_path / "run"
    proc = _cli(*_table_args(_csv(tmp_path / "t.csv"), run, "--steps", "1000000", "--ckpt-every", "5"), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not (run / CHECKPOINT_NAME).exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    found = re.fullmatch(r"masklab: interrupted at step (\d+); (.+) holds step (\d+) — resume with --resume", last)
    assert found, last
    assert found[2] == str(run / CHECKPOINT_NAME)
    # The first Ctrl-C finishes the step it is in and checkpoints it: nothing is lost (not only the last
    # multiple of --ckpt-every).
    assert int(found[3]) == load_run(run).step == int(found[1])
    assert "stopping after this step to save a checkpoint" in err


@pytest.mark.slow
def test_minutes_bounds_the_whole_command_and_info_says_so(tmp_path):
    """The command with ``--minutes B`` takes about ``max(B, what one step costs from start to exit)``: the
    fixed part (interpreter, imports, data, one step, exit) is timed with ``--steps 1`` on the same machine."""
    data, minutes = _csv(tmp_path / "t.csv"), 0.25

    def wall(*args: str) -> float:
        began = time.monotonic()
        _, err = _cli(*_table_args(data, *args), cwd=tmp_path).communicate(timeout=600)
        assert "Traceback" not in err and "masklab: error" not in err, err
        return time.monotonic() - began

    fixed = wall(tmp_path / "one", "--steps", "1")
    run = tmp_path / "run"
    timed = wall(run, "--minutes", str(minutes))
    assert timed < max(minutes * 60, fixed) + 15, (timed, fixed)  # slack for a loaded machine
    files = load_run(run)
    assert files.metadata["stop_reason"] == "time budget" and files.step >= 1
    assert "deadline" not in json.loads((run / "config.json").read_text())["train"]  # process-local, unrecorded
    info = subprocess.run([sys.executable, "-m", "masklab", "info", str(run)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=300)  # fmt: skip
    assert f"stopped at step {files.step}: time budget {minutes:g} min reached" in info.stdout, info.stdout


def test_a_run_ended_by_its_budget_says_so_in_info(tmp_path, capsys):
    run = tmp_path / "run"
    began = time.monotonic()
    assert main(_table_args(_csv(tmp_path / "t.csv"), run, "--minutes", "0.03")) == 0
    assert time.monotonic() - began < 0.03 * 60 + 10  # in-process: no interpreter start to allow for
    (run / "eval.json").write_text(json.dumps({"step": 1, "train_seconds": 1.0, "val": {"loss": 1.25}}))
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    step = load_run(run).step
    assert f"stopped at step {step}: time budget 0.03 min reached" in out, out
    assert "evaluation   val.loss 1.25 (step 1)" in out and "train_seconds" not in out, out


@pytest.mark.parametrize("kind", KINDS)
def test_help_shows_every_default_and_no_markup(kind):
    import argparse

    from masklab.cli import build_parser

    parser = build_parser(["pretrain", kind])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["pretrain"]
    sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[kind]
    text = sub.format_help()
    assert "``" not in text and "%%" not in text
    for action in sub._actions:
        flag = action.option_strings[-1] if action.option_strings else None
        if flag in (None, "--help", "--out", "--resume") or action.nargs == 0:  # a switch is off unless given
            continue
        assert "default" in (action.help or ""), (kind, flag, action.help)
    for flag in ("--steps", "--batch-size", "--seed", "--ckpt-every", "--lr", "--warmup"):
        assert re.search(rf"{flag} \S+\s+[^-]*?\(default [^)]+\)", text), (kind, flag)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (FloatingPointError("loss became nan by step 5; no checkpoint was written yet"),
         "masklab: error: loss became nan by step 5; no checkpoint was written yet"),
        (OSError(28, "No space left on device", "runs/x/metrics.jsonl"),
         "masklab: error: runs/x/metrics.jsonl: No space left on device"),
        (PermissionError(13, "Permission denied", "runs/x"), "masklab: error: runs/x: Permission denied"),
    ],
)  # fmt: skip
def test_ordinary_failures_are_one_line_exit_2(monkeypatch, capsys, error, line):
    import masklab.cli.info

    def failing(args):
        raise error

    monkeypatch.setattr(masklab.cli.info, "_run", failing)
    assert main(["info", "anything"]) == 2
    assert capsys.readouterr().err == line + "\n"


def test_every_command_states_its_options_defaults():
    import argparse

    from masklab.cli import COMMANDS, build_parser

    def options(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)
            elif action.option_strings and action.nargs != 0 and action.help != argparse.SUPPRESS:
                yield action

    for name in COMMANDS:
        for action in options(build_parser([name])):
            if action.default not in (None, "", [], argparse.SUPPRESS) and not action.required:
                assert "default" in (action.help or ""), (name, action.option_strings, action.help)


def test_a_minutes_run_says_the_deadline_ends_it_not_a_step_count(tmp_path, capsys):
    # it printed "about N steps" and then the generous upper bound "M steps of 64" as if both were the plan
    assert main(_table_args(_csv(tmp_path / "t.csv"), tmp_path / "run", "--minutes", "0.05")) == 0
    out = capsys.readouterr().out
    assert "steps of 8 until the --minutes deadline" in out and re.search(r"\d+ steps of 8", out) is None
