"""``pretrain mlm|clm --resume`` refuses a prepared corpus that is not the one the run trained on (the run's
sidecar records the shards' digest, the tokenizer's sha256 and the token count); before, replacing a prepared
folder's shards resumed silently on other rows (clm noticed only a changed token count)."""

import json
import random
import shutil

import pytest

from masklab.cli import main

pytest.importorskip("tokenizers")

WORDS = ["team", "match", "goal", "coach", "bank", "shares", "profit", "market", "the", "and"]
MLM = ["--preset", "bert-tiny", "--seq-len", "16", "--batch-size", "4", "--device", "cpu", "--holdout", "0.1"]
CLM = ["--preset", "gpt-tiny", "--context", "16", "--batch-size", "4", "--device", "cpu", "--warmup", "1"]


def _text(seed: int) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(60)) + "\n"


def _prepare(text: str, folder, tmp_path, *extra: str) -> None:
    src = tmp_path / f"{folder.name}.txt"
    src.write_text(text, encoding="utf-8")
    assert main(["prepare", "--data", str(src), "--out", str(folder), "--workers", "1", *extra]) == 0


def _swap_shards(folder, other) -> None:
    shutil.rmtree(folder)
    shutil.copytree(other, folder)


def test_mlm_resume_on_replaced_shards_is_refused(tmp_path, capsys):
    data, other = tmp_path / "data", tmp_path / "other"
    _prepare(_text(0), data, tmp_path, "--vocab-size", "60")
    _prepare(_text(1), other, tmp_path, "--tokenizer", str(data / "tokenizer.json"))
    run = tmp_path / "run"
    assert main(["pretrain", "mlm", "--data", str(data), "--out", str(run), "--steps", "2", *MLM]) == 0
    assert "corpus" in json.loads((run / "text.json").read_text())
    _swap_shards(data, other)
    capsys.readouterr()
    assert main(["pretrain", "mlm", "--data", str(data), "--out", str(run), "--steps", "4", "--resume", *MLM]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "shards" in err and str(data) in err
    assert "Traceback" not in err


def test_mlm_old_run_without_the_record_still_resumes(tmp_path):
    data = tmp_path / "data"
    _prepare(_text(0), data, tmp_path, "--vocab-size", "60")
    run = tmp_path / "run"
    assert main(["pretrain", "mlm", "--data", str(data), "--out", str(run), "--steps", "2", *MLM]) == 0
    info = json.loads((run / "text.json").read_text())
    del info["corpus"]
    (run / "text.json").write_text(json.dumps(info))
    assert main(["pretrain", "mlm", "--data", str(data), "--out", str(run), "--steps", "4", "--resume", *MLM]) == 0


def test_clm_resume_on_same_length_other_text_is_refused(tmp_path, capsys):
    data, other = tmp_path / "data", tmp_path / "other"
    text = _text(0)
    _prepare(text, data, tmp_path, "--tokenizer-kind", "char", "--cased")
    same_length = "\n".join(line[::-1] for line in text.split("\n"))  # same characters, other order
    _prepare(same_length, other, tmp_path, "--tokenizer", str(data / "tokenizer.json"))
    assert (
        json.loads((data / "index.json").read_text())["tokens"]
        == json.loads((other / "index.json").read_text())["tokens"]
    )
    run = tmp_path / "run"
    assert main(["pretrain", "clm", "--data", str(data), "--out", str(run), "--steps", "2", *CLM]) == 0
    _swap_shards(data, other)
    capsys.readouterr()
    assert main(["pretrain", "clm", "--data", str(data), "--out", str(run), "--steps", "4", "--resume", *CLM]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "shards" in err


def test_changed_data_file_does_not_suggest_a_path_to_silent_resume(tmp_path, capsys):
    src, run = tmp_path / "corpus.txt", tmp_path / "run"
    src.write_text(_text(0), encoding="utf-8")
    argv = ["pretrain", "mlm", "--data", str(src), "--out", str(run), *MLM, "--vocab-size", "60"]
    assert main([*argv, "--steps", "2"]) == 0
    src.write_text(_text(1), encoding="utf-8")
    capsys.readouterr()
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "delete" not in err and "new run" in err
    shutil.rmtree(run / "prepared")  # what the old message suggested: the run must still refuse
    assert main([*argv, "--steps", "4", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_resume_message_says_reusing(tmp_path, capsys):
    src, run = tmp_path / "corpus.txt", tmp_path / "run"
    src.write_text(_text(0), encoding="utf-8")
    argv = ["pretrain", "mlm", "--data", str(src), "--out", str(run), *MLM, "--vocab-size", "60"]
    assert main([*argv, "--steps", "2"]) == 0
    assert "preparing" in capsys.readouterr().out
    assert main([*argv, "--steps", "4", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "reusing" in out and "preparing" not in out
