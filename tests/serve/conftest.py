"""Tiny runs of every served kind, trained once per session with the CLI (2 steps each), and clients."""

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
    return make_client(runs)


def write_series(path, n: int = 10, seed: int = 0):
    """Noisy sines in two channels, lengths 20-40, a few values missing: a series run's data (an .npz)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 41, size=n)
    values = np.full((n, 40, 2), np.nan, dtype=np.float32)
    for i, length in enumerate(lengths):
        t = np.arange(length)
        values[i, :length, 0] = np.sin(t * 0.4) + 0.1 * rng.normal(size=length)
        values[i, :length, 1] = np.cos(t * 0.2) + 0.1 * rng.normal(size=length)
    values[0, 5:8, 0] = np.nan
    np.savez(path, values=values, lengths=lengths)
    return path


def write_subjects(root, n: int = 16, seed: int = 0):
    """``root/images`` + ``root/masks``: 16x16 RGB noise with a bright square subject (white = subject)."""
    import numpy as np
    from PIL import Image

    from masklab.data.pixel_masks import write_mask

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image = rng.integers(0, 120, (16, 16, 3), dtype=np.uint8)
        target = np.zeros((16, 16), dtype=bool)
        y, x = rng.integers(0, 8, 2)
        target[y : y + 7, x : x + 7] = True
        image[target] = 230
        Image.fromarray(image).save(root / "images" / f"{i:02d}.png")
        write_mask(root / "masks" / f"{i:02d}.png", target)
    return root


@pytest.fixture(scope="session")
def series_dirs(tmp_path_factory):
    """A series run on an .npz (no held-out split) and one on builtin:japanese-vowels (12 channels, a split)."""
    root = tmp_path_factory.mktemp("serve_series")
    write_series(root / "s.npz")
    common = ["--preset", "series-tiny", "--steps", "2", "--batch-size", "8", "--device", "cpu"]
    assert main(["pretrain", "series", "--data", str(root / "s.npz"), *common, "--out", str(root / "series")]) == 0
    pytest.importorskip("sktime")
    vowels = ["--data", "builtin:japanese-vowels", *common, "--out", str(root / "vowels")]
    assert main(["pretrain", "series", *vowels]) == 0
    return root


@pytest.fixture(scope="session")
def segment_dirs(tmp_path_factory):
    """An RGB MAE run with a head in RUN/segment (2 steps each), an MAE run without one, and a copy of the head
    whose config plans more steps than it ran (an interrupted head)."""
    import json
    import shutil

    root = tmp_path_factory.mktemp("serve_segment")
    data = write_subjects(root / "data")
    common = ["--preset", "mae-tiny", "--steps", "2", "--batch-size", "8", "--device", "cpu"]
    assert main(["pretrain", "mae", "--data", str(data / "images"), *common, "--out", str(root / "seg")]) == 0
    assert main(["segment", "train", str(root / "seg"), "--data", str(data), "--steps", "2"]) == 0
    shutil.copytree(root / "seg", root / "plain", ignore=shutil.ignore_patterns("segment"))
    shutil.copytree(root / "seg" / "segment", root / "unfinished")
    config = json.loads((root / "unfinished" / "config.json").read_text())
    config["train"]["steps"] = 50
    (root / "unfinished" / "config.json").write_text(json.dumps(config))
    info = json.loads((root / "unfinished" / "segment.json").read_text())
    info["mae_run"] = str(root / "gone")  # the MAE it was trained on is not here: no remove-subject
    (root / "unfinished" / "segment.json").write_text(json.dumps(info))
    return root


def make_client(runs):
    """A client of the app serving ``runs``, by its local name (the app refuses other Host headers).
    raise_server_exceptions=False: a bug must come back as the app's JSON 500, as a browser would see it."""
    from fastapi.testclient import TestClient

    from masklab.serve.app import create_app

    app = create_app(runs, max_upload_bytes=MAX_UPLOAD)
    return TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)


@pytest.fixture(scope="session")
def series_runs(series_dirs):
    from masklab.serve.runs import load_runs

    return {run.name: run for run in load_runs([series_dirs / "series", series_dirs / "vowels"], "cpu")}


@pytest.fixture(scope="session")
def series_client(series_runs):
    return make_client(list(series_runs.values()))


@pytest.fixture(scope="session")
def segment_runs(segment_dirs):
    from masklab.serve.runs import load_runs

    paths = [segment_dirs / name for name in ("seg", "seg/segment", "unfinished", "plain")]
    return {run.name: run for run in load_runs(paths, "cpu")}


@pytest.fixture(scope="session")
def segment_client(segment_runs):
    return make_client(list(segment_runs.values()))
