"""Tiny runs of every served kind, trained once per session with the CLI (2 steps each), and a client."""

import csv
import random

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")

from masklab.cli import main

CORPUS = "the cat sat on the mat and the dog ran to the park .\n" * 60
CPU = ["--device", "cpu", "--steps", "2", "--log-every", "1"]
MAX_UPLOAD = 200_000  # bytes: small, so the 413 tests stay cheap


def write_table(path, rows: int = 60, seed: int = 0):
    """id, a, b ~ 2a, city: a table run's training data (and, with holes, its test uploads)."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "a", "b", "city"])
        for i in range(rows):
            a = rng.gauss(0, 1)
            writer.writerow([i, f"{a:.3f}", f"{2 * a + rng.gauss(0, 0.1):.3f}", rng.choice(["Oslo", "Lima"])])
    return path


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve_runs")
    (root / "corpus.txt").write_text(CORPUS)
    write_table(root / "train.csv")
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--image-size", "16",
                 "--batch-size", "16", "--out", str(root / "mae"), *CPU]) == 0  # fmt: skip
    assert main(["pretrain", "mlm", "--data", str(root / "corpus.txt"), "--preset", "bert-tiny", "--vocab-size",
                 "60", "--seq-len", "16", "--batch-size", "4", "--holdout", "0.1", "--out", str(root / "mlm"),
                 *CPU]) == 0  # fmt: skip
    assert main(["pretrain", "clm", "--data", str(root / "corpus.txt"), "--preset", "gpt-tiny", "--context", "16",
                 "--batch-size", "4", "--out", str(root / "clm"), *CPU]) == 0  # fmt: skip
    assert main(["pretrain", "table", "--data", str(root / "train.csv"), "--preset", "table-tiny", "--exclude",
                 "id", "--batch-size", "16", "--out", str(root / "table"), "--device", "cpu", "--steps",
                 "2"]) == 0  # fmt: skip
    return root


@pytest.fixture(scope="session")
def runs(run_dirs):
    from masklab.serve.runs import load_runs

    return load_runs([run_dirs / k for k in ("mae", "mlm", "clm", "table")], "cpu")


@pytest.fixture(scope="session")
def by_kind(runs):
    return {run.kind: run for run in runs}


@pytest.fixture(scope="session")
def client(runs):
    from fastapi.testclient import TestClient

    from masklab.serve.app import create_app

    # raise_server_exceptions=False: a bug must come back as the app's JSON 500, as a browser would see it.
    return TestClient(create_app(runs, max_upload_bytes=MAX_UPLOAD), raise_server_exceptions=False)
