"""A prepared folder knows what it was made from: a changed input, other settings, a broken line or a replaced
tokenizer are refused naming the file (exit 2); an unfinished prepare never blocks a corrected one."""

import json

from masklab.cli import main

SMALL = ["--vocab-size", "60", "--workers", "1", "--shard-mb", "0.002"]


def _jsonl(path, lines: int, broken_at: int | None = None):
    rows = [json.dumps({"text": f"the team and the goal of the season number {i}."}) for i in range(lines)]
    if broken_at is not None:
        rows.insert(broken_at - 1, '{"text": broken')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("masklab: error: "), err
    return err


def test_a_broken_jsonl_line_is_named_with_its_number(tmp_path, capsys):
    bad = _jsonl(tmp_path / "bad.jsonl", 60, broken_at=51)
    assert main(["prepare", "--data", str(bad), "--out", str(tmp_path / "out"), *SMALL]) == 2
    err = _error(capsys)
    assert f"{bad}:51: not valid JSON (Expecting value" in err
