"""A second writer on a text run (``pretrain mlm`` / ``pretrain clm``) is refused before it reads any data: it
used to train a tokenizer and pack (or prepare) the whole corpus first, and only then find the run's lock."""

import json
import os
import socket

import pytest

import masklab.data.shards
import masklab.data.text
from masklab.cli import main
from masklab.tokenizers.text import TextTokenizer
from masklab.train.run import LOCK_NAME

pytest.importorskip("tokenizers")

KIND_ARGS = {
    "mlm": ["--preset", "bert-tiny", "--vocab-size", "120", "--seq-len", "32"],
    "clm": ["--preset", "gpt-tiny", "--context", "32"],
}


@pytest.fixture
def no_data_reads(monkeypatch):
    """Reading, preparing or tokenising the data fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before the run's lock was taken")

    monkeypatch.setattr(masklab.data.text, "load_text_corpus", refuse)
    monkeypatch.setattr(masklab.data.shards, "prepared_for_run", refuse)
    monkeypatch.setattr(TextTokenizer, "train", refuse)


def _held_by_another_process(run):
    run.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0.0}  # a live process, not this one
    (run / LOCK_NAME).write_text(json.dumps(holder))
    return holder


@pytest.mark.parametrize("kind", ["mlm", "clm"])
@pytest.mark.parametrize("data", ["builtin:shakespeare", "file"])
def test_a_locked_run_is_refused_before_any_data_is_read(kind, data, tmp_path, capsys, no_data_reads):
    if data == "file":
        data = str(tmp_path / "play.txt")
        (tmp_path / "play.txt").write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 40)
    run = tmp_path / "run"
    holder = _held_by_another_process(run)
    argv = ["pretrain", kind, "--data", data, "--out", str(run), "--steps", "1", "--device", "cpu", *KIND_ARGS[kind]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{run} is being written by process {holder['pid']} on {holder['host']}" in err, err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing prepared, the holder's lock kept
    assert json.loads((run / LOCK_NAME).read_text()) == holder


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_a_resume_of_a_locked_run_is_refused_before_any_data_is_read(kind, tmp_path, capsys, no_data_reads):
    run = tmp_path / "run"
    holder = _held_by_another_process(run)
    argv = ["pretrain", kind, "--data", "builtin:shakespeare", "--out", str(run), "--steps", "1", "--resume",
            *KIND_ARGS[kind]]  # fmt: skip
    assert main(argv) == 2
    assert f"is being written by process {holder['pid']}" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_a_failed_start_leaves_no_run_directory(kind, tmp_path, capsys):
    # The lock (now taken first) makes the run directory; a start that fails removes the empty folders it made.
    out = tmp_path / "new" / "run"
    argv = ["pretrain", kind, "--data", str(tmp_path / "missing.txt"), "--out", str(out), *KIND_ARGS[kind]]
    assert main(argv) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []
