"""An MAE run downstream, from a folder of class subfolders: the fine-tune output layout, ``predict`` against the
model's own argmax, ``embed``'s row index, and ``--skip-bad`` on a folder holding a corrupt and a 1x1 file."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.cli import main

CLASSES = ("one", "three", "zero")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """``data/<class>/NNN.png``: 16 8x8 scikit-learn digits per class, as gray PNGs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digits") / "data"
    for name, digit in zip(CLASSES, (1, 3, 0), strict=True):
        (root / name).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == digit][:16]):
            Image.fromarray((image * 15).astype(np.uint8)).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def finetuned(folder, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mae"
    assert main(["pretrain", "mae", "--data", str(folder), "--preset", "mae-tiny", "--steps", "3", "--batch-size",
                 "16", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    assert main(["finetune", str(run), "--steps", "3", "--batch-size", "16", "--device", "cpu"]) == 0
    return run


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_finetune_layout(finetuned):
    out = finetuned / "finetune"
    for name in ("model.safetensors", "config.json", "metrics.json", "confusion.png", "confusion.csv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == list(CLASSES) and 0 <= metrics["accuracy"] <= 1
    matrix = np.array(metrics["confusion"])
    assert matrix.sum() == metrics["test_size"] == 9  # round(0.2 * 16) = 3 held out per class
    with open(out / "confusion.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["true \\ predicted", *CLASSES]
    assert [row[0] for row in table[1:]] == list(CLASSES)
    np.testing.assert_array_equal(np.array([row[1:] for row in table[1:]], dtype=int), matrix)
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())


def test_predict_matches_the_models_argmax(finetuned, folder, tmp_path, capsys):
    from masklab.data.images import decode_image
    from masklab.recipes.finetune_outputs import load_finetuned

    out = tmp_path / "pred.csv"
    assert main(["predict", str(finetuned), str(folder), "-o", str(out), "--device", "cpu"]) == 0
    assert "48 inputs" in capsys.readouterr().out
    rows = read_csv(out)
    assert list(rows[0]) == ["row", "source", "prediction", *(f"p_{c}" for c in CLASSES)]
    files = sorted(folder.rglob("*.png"))
    assert [r["source"] for r in rows] == [str(f) for f in files]
    model = load_finetuned(finetuned / "finetune")
    cfg = model.config
    images = torch.cat([decode_image(f.read_bytes(), image_size=cfg.image_size, channels=1) for f in files])
    with torch.no_grad():
        probs = model.logits(images).softmax(-1).numpy()
    assert [r["prediction"] for r in rows] == [CLASSES[i] for i in probs.argmax(1)]
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=1e-4, atol=1e-6)
    # One file, and the fine-tune folder itself as RUN.
    assert main(["predict", str(finetuned / "finetune"), str(files[0]), "-o", str(out), "--device", "cpu"]) == 0
    assert read_csv(out)[0]["prediction"] == CLASSES[probs[0].argmax()]


def test_embed_writes_a_row_index(finetuned, folder, tmp_path):
    out = tmp_path / "feats.npy"
    assert main(["embed", str(finetuned), "-o", str(out), "--device", "cpu"]) == 0
    feats = np.load(out)
    index = read_csv(tmp_path / "feats.index.csv")
    assert feats.shape == (48, 32) and len(index) == feats.shape[0]
    files = sorted(folder.rglob("*.png"))
    assert [r["row"] for r in index] == [str(i) for i in range(48)]
    assert [r["source"] for r in index] == [str(f) for f in files]
    assert [r["label"] for r in index] == [f.parent.name for f in files]
    # Row 5 of the array is the features of the file row 5 names.
    from masklab.recipes.mae_tasks import embed_mae

    alone = embed_mae(finetuned, data=str(folder), device="cpu").features
    np.testing.assert_array_equal(alone[5], feats[5])
    # NAME.sha256 records the pair; read_embedding checks it and gives back the rows with their sources
    from masklab.recipes import read_embedding

    back = read_embedding(out)
    np.testing.assert_array_equal(back.features, feats)
    assert list(back.sources) == [str(f) for f in files] and list(back.labels) == [f.parent.name for f in files]


def test_skip_bad_names_the_file_else_fails(finetuned, folder, tmp_path, capsys):
    bad = tmp_path / "bad" / "data"
    for name in CLASSES:
        (bad / name).mkdir(parents=True)
        for f in sorted((folder / name).glob("*.png"))[:4]:
            (bad / name / f.name).write_bytes(f.read_bytes())
    (bad / "one" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(np.zeros((1, 1), dtype=np.uint8)).save(bad / "zero" / "dot.png")
    for argv in (["embed", str(finetuned), "--data", str(bad), "-o", str(tmp_path / "e.npy")],
                 ["probe", str(finetuned), "--data", str(bad)],
                 ["predict", str(finetuned), str(bad), "-o", str(tmp_path / "p.csv")]):  # fmt: skip
        assert main([*argv, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "corrupt.png" in err and "Traceback" not in err
        assert main([*argv, "--device", "cpu", "--skip-bad"]) == 0
        err = capsys.readouterr().err
        assert (
            "skipped 2 images (--skip-bad; unreadable or smaller than one patch)" in err
            and "corrupt.png" in err
            and "dot.png" in err
        )
    assert len(read_csv(tmp_path / "p.csv")) == 12
    assert np.load(tmp_path / "e.npy").shape[0] == len(read_csv(tmp_path / "e.index.csv")) == 12
    recon = ["reconstruct", str(finetuned), "--data", str(bad), "--count", "2", "-o", str(tmp_path / "r.png")]
    assert main(recon) == 2 and "corrupt.png" in capsys.readouterr().err
    assert main([*recon, "--skip-bad"]) == 0
    assert "skipped 2 images (--skip-bad; unreadable or smaller than one patch)" in capsys.readouterr().err
    finetune = ["finetune", str(finetuned), "--data", str(bad), "--steps", "1", "--out", str(tmp_path / "ft"),
                "--device", "cpu"]  # fmt: skip
    assert main(finetune) == 2 and "corrupt.png" in capsys.readouterr().err
    assert main([*finetune, "--skip-bad"]) == 0
    assert "skipped 2 images (--skip-bad; unreadable or smaller than one patch)" in capsys.readouterr().err


def test_colour_pictures_for_a_gray_model_are_converted_and_said(finetuned, folder, tmp_path, capsys):
    # predict and attention converted colour pictures to gray without a word, reconstruct refused them: the
    # commands that look at pictures now all convert them (luma) and say which; a gray file is not named.
    from masklab.data.images import decode_image
    from masklab.recipes.finetune_outputs import load_finetuned

    pics = tmp_path / "pics"
    pics.mkdir()
    gray = sorted(folder.rglob("*.png"))[0]
    (pics / "a_gray.png").write_bytes(gray.read_bytes())
    rng = np.random.default_rng(0)
    for name in ("b_colour.png", "c_colour.png"):
        Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(pics / name)
    out = tmp_path / "p.csv"
    assert main(["predict", str(finetuned), str(pics), "-o", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "the model takes gray images; 2 colour pictures converted to gray (luma)" in err
    assert "b_colour.png" in err and "c_colour.png" in err and "a_gray.png" not in err
    model = load_finetuned(finetuned / "finetune")
    files = sorted(pics.glob("*.png"))
    images = torch.cat([decode_image(f.read_bytes(), image_size=model.config.image_size, channels=1) for f in files])
    with torch.no_grad():
        probs = model.logits(images).softmax(-1).numpy()
    got = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in read_csv(out)])
    np.testing.assert_allclose(got, probs, rtol=1e-4, atol=1e-6)  # the same luma as before
    colour = str(pics / "b_colour.png")
    assert main(["attention", str(finetuned), colour, "-o", str(tmp_path / "a.png"), "--device", "cpu"]) == 0
    assert "1 colour picture converted to gray (luma): " + colour in capsys.readouterr().err
    assert main(["reconstruct", str(finetuned), colour, "-o", str(tmp_path / "r.png"), "--device", "cpu"]) == 0
    assert "1 colour picture converted to gray (luma): " + colour in capsys.readouterr().err
