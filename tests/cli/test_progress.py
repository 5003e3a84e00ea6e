"""Downstream commands say what they are doing on stderr (progress), results go to stdout only, and
``-q/--quiet`` silences the progress. Run through the real CLI in a subprocess (stderr is not a TTY: plain
lines, one per stage)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from masklab.cli import main


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    rng = np.random.default_rng(0)
    kind = rng.integers(0, 2, size=40)
    frame = pd.DataFrame({"a": rng.normal(size=40) + 2 * kind, "b": rng.normal(size=40),
                          "kind": np.where(kind, "x", "y")})  # fmt: skip
    frame.to_csv(root / "t.csv", index=False)
    out = root / "run"
    assert main(["pretrain", "table", "--data", str(root / "t.csv"), "--label", "kind", "--preset", "table-tiny",
                 "--steps", "2", "--batch-size", "16", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    return out


def masklab(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "masklab", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


@pytest.mark.slow  # a fresh interpreter imports torch
def test_probe_reports_progress_on_stderr_and_only_the_table_on_stdout(table_run):
    done = masklab("probe", str(table_run), "--device", "cpu", "--batch-size", "8")
    assert done.returncode == 0, done.stderr
    err = done.stderr.splitlines()
    assert err[0] == f"masklab probe: loading {table_run}"  # said before any import of torch
    assert "masklab probe: TableMAE encoder: encoding 40 rows" in err
    assert "masklab probe: raw cells: fitting the linear probe and k-NN" in err
    assert "Traceback" not in done.stderr
    out = done.stdout.splitlines()
    assert out[0].endswith("scored on 8 held-out rows")  # the result: what the probe saw, then its table
    assert any(line.startswith("TableMAE encoder") for line in out)
    assert not any("masklab probe:" in line or "encoding" in line for line in out)


@pytest.mark.slow  # a fresh interpreter imports torch
def test_embed_reports_progress_and_quiet_silences_it(table_run, tmp_path):
    done = masklab("embed", str(table_run), "--device", "cpu", "-o", str(tmp_path / "f.npy"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[:2] == [f"masklab embed: loading {table_run}",
                                            "masklab embed: reading and encoding the table"]  # fmt: skip
    assert "masklab embed: encoding 40 rows" in done.stderr.splitlines()
    assert done.stdout.startswith("masklab: wrote 40 x ") and len(done.stdout.splitlines()) == 1
    quiet = masklab("embed", str(table_run), "--device", "cpu", "-o", str(tmp_path / "g.npy"), "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.replace("/g.", "/f.") == done.stdout  # the .npy, its index and NAME.sha256


def test_counted_stages_report_counts_and_a_bar_on_a_terminal(capsys):
    from masklab.cli.progress import StderrProgress
    from masklab.recipes.progress import batches

    progress = StderrProgress("embed", bar=False, every_s=0.0)
    assert [s.start for s in batches(5, 2, progress, "encoding 5 rows")] == [0, 2, 4]
    assert capsys.readouterr().err.splitlines() == [
        "masklab embed: encoding 5 rows", "masklab embed: encoding 5 rows: 2/5 (40%)",
        "masklab embed: encoding 5 rows: 4/5 (80%)", "masklab embed: encoding 5 rows: 5/5 (100%)",
    ]  # fmt: skip
    bar = StderrProgress("embed", bar=True)
    list(batches(5, 2, bar, "encoding 5 rows"))
    assert bar._tqdm is not None and bar._tqdm.n == 5
    bar.close()
    assert "5/5" in capsys.readouterr().err
