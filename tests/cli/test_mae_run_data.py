"""An MAE run's recorded data: an absolute path (usable from any folder), an old run's relative spec named when
it is not found (and still resumable), a fine-tuned classifier refused as a finetune source with that reason,
a finetune --out inside --data refused, and a one-image class said to have no held-out example."""

import json
import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.cli import main

TINY = ["--preset", "mae-tiny", "--steps", "2", "--batch-size", "8", "--device", "cpu"]


def make_folder(root, classes=("one", "two", "zero"), per_class=8):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8), 30 * c + 3 * i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``home/pngs`` (24 images) pretrained with the relative ``--data pngs`` from ``home``."""
    home = tmp_path_factory.mktemp("home")
    make_folder(home / "pngs")
    before = os.getcwd()
    os.chdir(home)
    try:
        assert main(["pretrain", "mae", "--data", "pngs", "--out", "run", *TINY]) == 0
    finally:
        os.chdir(before)
    return home


def test_data_json_records_the_absolute_path(trained):
    info = json.loads((trained / "run" / "data.json").read_text())
    assert info["spec"] == str((trained / "pngs").resolve())


def test_embed_from_another_folder_reads_the_runs_data(trained, tmp_path, monkeypatch):
    make_folder(tmp_path / "pngs", classes=("a", "b", "c", "d"))  # a same-named folder of other images
    monkeypatch.chdir(tmp_path)
    assert main(["embed", str(trained / "run"), "-o", "e.npy"]) == 0
    assert np.load(tmp_path / "e.npy").shape[0] == 24


def old_run(trained, tmp_path):
    """A copy of the run as an older masklab wrote it: data.json records the relative ``pngs``."""
    run = tmp_path / "old"
    shutil.copytree(trained / "run", run)
    info = json.loads((run / "data.json").read_text())
    (run / "data.json").write_text(json.dumps({**info, "spec": "pngs"}))
    return run


def test_old_relative_spec_not_found_names_data_json(trained, tmp_path, monkeypatch, capsys):
    run = old_run(trained, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["probe", str(run)]) == 2
    err = capsys.readouterr().err
    assert "data.json" in err and "pass --data" in err and "--data pngs: no such" not in err


def test_old_relative_spec_found_from_here_is_named(trained, tmp_path, monkeypatch, capsys):
    run = old_run(trained, tmp_path)
    monkeypatch.chdir(trained)
    assert main(["embed", str(run), "-o", str(tmp_path / "e.npy")]) == 0
    assert str((trained / "pngs").resolve()) in capsys.readouterr().err


def test_old_relative_run_still_resumes(trained, tmp_path, monkeypatch):
    run = old_run(trained, tmp_path)
    monkeypatch.chdir(trained)
    args = json.loads((run / "arguments.json").read_text())
    assert args
    assert main(["pretrain", "mae", "--data", "pngs", "--out", str(run), "--resume",
                 *[a if a != "2" else "3" for a in TINY]]) == 0  # fmt: skip
    assert json.loads((run / "data.json").read_text())["spec"] == "pngs"


def test_finetune_of_a_finetuned_classifier_says_so(trained, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", str(trained / "run"), "--steps", "1", "--batch-size", "8", "--device", "cpu",
                 "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["finetune", str(out), "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "ft2")]) == 2
    err = capsys.readouterr().err
    assert "fine-tuned classifier" in err and "missing []" not in err


def test_finetune_out_inside_data_is_refused(trained, tmp_path, capsys):
    data = make_folder(tmp_path / "imgs")
    for out in (data, data / "ft"):
        assert main(["finetune", str(trained / "run"), "--data", str(data), "--steps", "1", "--device", "cpu",
                     "--out", str(out)]) == 2  # fmt: skip
        assert "--data" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == ["one", "two", "zero"]


def test_a_one_image_class_is_said_to_have_no_held_out_example():
    from masklab.data.images import split_indices

    labels = torch.tensor([0] * 10 + [1] * 10 + [2])
    with pytest.warns(UserWarning, match="class 'two' has 1 image"):
        split_indices(21, labels, 0.2, 0, names=("one", "zero", "two"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_indices(20, labels[:20], 0.2, 0, names=("one", "zero"))
