"""Every ``masklab pretrain KIND`` runs unchanged under ``torchrun`` (2 gloo ranks on CPU): one checkpoint, one
copy of the command's own output, and the run loads afterwards."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tokenizers")

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 40


def torchrun(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "masklab", "pretrain", *args, "--steps", "2", "--device", "cpu"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("kind", ["mae", "mlm", "clm", "table", "series"])
def test_pretrain_under_torchrun(kind, tmp_path):
    out = tmp_path / "run"
    if kind == "mae":
        args = ["mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--batch-size", "16"]
    elif kind == "table":
        args = ["table", "--max-rows", "500", "--batch-size", "16"]  # builtin shuttle: numeric columns only
    elif kind == "series":
        args = ["series", "--preset", "series-tiny", "--batch-size", "16"]  # builtin japanese-vowels: padded
    else:
        (tmp_path / "text").mkdir()
        for i in range(8):
            (tmp_path / "text" / f"{i}.txt").write_text(TEXT, encoding="utf-8")
        args = [kind, "--data", str(tmp_path / "text"), "--batch-size", "8"]
        args += (["--preset", "bert-tiny", "--vocab-size", "120", "--seq-len", "32"] if kind == "mlm"
                 else ["--preset", "gpt-tiny", "--context", "32"])  # fmt: skip
    stdout = torchrun([*args, "--out", str(out)], tmp_path)
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines and len(lines) == len(set(lines)), f"rank 1 printed too:\n{stdout}"  # rank 0 speaks alone
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["steps"] == 2 and (out / "checkpoint.safetensors").is_file()
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()][-1] == 2
