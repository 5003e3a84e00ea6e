"""``masklab segment`` and ``masklab edit`` end to end on a tiny MAE run: masks, side-by-side, every edit,
``--remove-subject`` changing only the pixels under the mask, and bad inputs (exit 2, message naming the file)."""

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main
from masklab.data.pixel_masks import write_mask


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 16, 16, 3), dtype=np.uint8)
    targets = np.zeros((24, 16, 16), dtype=bool)
    for i in range(24):
        y, x = rng.integers(0, 8, 2)
        targets[i, y : y + 6, x : x + 6] = True
        images[i][targets[i]] = 230
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "masks").mkdir()
    for i in range(24):
        Image.fromarray(images[i]).save(root / "data" / "images" / f"{i:02d}.png")
        write_mask(root / "data" / "masks" / f"{i:02d}.png", targets[i])
    run = root / "run"
    assert main(["pretrain", "mae", "--data", str(root / "data" / "images"), "--preset", "mae-tiny",
                 "--steps", "2", "--batch-size", "8", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    assert main(["segment", "train", str(run), "--data", str(root / "data"), "--steps", "3"]) == 0
    return root, run


def test_segment_predict_writes_mask_and_side_by_side(workspace, capsys):
    root, run = workspace
    out = root / "pred" / "mask.png"
    assert main(["segment", str(run), str(root / "data" / "images" / "00.png"), "-o", str(out)]) == 0
    mask = Image.open(out)
    assert mask.size == (16, 16) and mask.mode == "L"
    assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    side = Image.open(root / "pred" / "mask_side.png")
    assert side.width > 3 * side.height // 2  # image | mask | overlay
    assert (run / "segment" / "segment.json").is_file()


@pytest.fixture
def hand_mask(tmp_path):
    mask = np.zeros((16, 16), dtype=bool)
    mask[3:9, 5:12] = True
    return write_mask(tmp_path / "hand.png", mask), mask


def test_remove_subject_changes_only_pixels_under_the_mask(workspace, hand_mask, tmp_path):
    root, run = workspace
    path, mask = hand_mask
    image = root / "data" / "images" / "03.png"
    out = tmp_path / "removed.png"
    assert main(["edit", str(run), str(image), "--remove-subject", "--mask", str(path), "-o", str(out)]) == 0
    before, after = np.asarray(Image.open(image)), np.asarray(Image.open(out))
    assert after.shape == before.shape
    assert np.array_equal(after[~mask], before[~mask])  # byte-identical outside the mask
    assert not np.array_equal(after[mask], before[mask])


def test_background_edits(workspace, hand_mask, tmp_path, capsys):
    root, run = workspace
    path, mask = hand_mask
    image = root / "data" / "images" / "05.png"
    before = np.asarray(Image.open(image))
    assert main(["edit", str(run), str(image), "--remove-background", "--mask", str(path), "-o",
                 str(tmp_path / "cut.png")]) == 0  # fmt: skip
    cut = np.asarray(Image.open(tmp_path / "cut.png"))
    assert cut.shape == (16, 16, 4) and np.array_equal(cut[..., 3] == 255, mask)
    assert np.array_equal(cut[mask][:, :3], before[mask])
    assert main(["edit", str(run), str(image), "--blur-background", "--mask", str(path), "-o",
                 str(tmp_path / "blur.png")]) == 0  # fmt: skip
    blur = np.asarray(Image.open(tmp_path / "blur.png"))
    assert np.array_equal(blur[mask], before[mask]) and not np.array_equal(blur[~mask], before[~mask])
    Image.fromarray(np.full((40, 30, 3), (0, 0, 255), np.uint8)).save(tmp_path / "bg.png")
    assert main(["edit", str(run), str(image), "--replace-background", str(tmp_path / "bg.png"), "--mask",
                 str(path), "-o", str(tmp_path / "rep.png")]) == 0  # fmt: skip
    rep = np.asarray(Image.open(tmp_path / "rep.png"))
    assert np.array_equal(rep[mask], before[mask]) and (rep[~mask] == (0, 0, 255)).all()
    # Without --mask the head trained in the fixture predicts the subject (3 steps: it may find none, which
    # is a clear error, not a crash).
    code = main(["edit", str(run), str(image), "--blur-background", "-o", str(tmp_path / "b2.png")])
    assert code == 0 or "found no subject" in capsys.readouterr().err


def _bad_mask(tmp_path, kind):
    if kind == "size":
        a = np.zeros((8, 16), np.uint8)
        a[2:4, 2:4] = 255
    elif kind == "values":
        a = np.zeros((16, 16), np.uint8)
        a[2:4, 2:4] = 128
        a[5, 5] = 255
    else:
        a = np.zeros((16, 16), np.uint8)
    Image.fromarray(a).save(tmp_path / f"{kind}.png")
    return tmp_path / f"{kind}.png"


@pytest.mark.parametrize(
    ("kind", "message"),
    [("size", "is 8x16 but the image is 16x16"), ("values", "is not binary"), ("empty", "is empty")],
)
def test_bad_masks_exit_2(workspace, tmp_path, capsys, kind, message):
    root, run = workspace
    mask = _bad_mask(tmp_path, kind)
    code = main(["edit", str(run), str(root / "data" / "images" / "00.png"), "--remove-subject", "--mask", str(mask),
                 "-o", str(tmp_path / "o.png")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and message in err and mask.name in err and "Traceback" not in err


def test_image_smaller_than_a_patch_exits_2(workspace, tmp_path, capsys):
    _, run = workspace
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "tiny.png")
    assert main(["segment", str(run), str(tmp_path / "tiny.png"), "-o", str(tmp_path / "m.png")]) == 2
    assert "smaller than one 4x4 patch" in capsys.readouterr().err


def test_training_folder_errors_exit_2(workspace, tmp_path, capsys):
    root, run = workspace
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    code = main(["segment", "train", str(run), "--data", str(tmp_path), "--steps", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "a.png has no mask" in err
    assert main(["segment", str(run), str(root / "data" / "images" / "00.png")]) == 2
    assert "-o MASK.png" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["segment", "edit"])
def test_output_not_named_png_exits_2_before_any_work(workspace, tmp_path, capsys, command):
    # Masks and edits are PNG bytes; under out.jpg they would mislead whatever opens the file by its name.
    root, run = workspace
    image = str(root / "data" / "images" / "00.png")
    args = [command, str(run), image, "-o", str(tmp_path / "out.jpg")]
    code = main(args if command == "segment" else [*args, "--remove-background"])
    err = capsys.readouterr().err
    assert code == 2 and "out.jpg" in err and "give it a name ending in .png" in err and "Traceback" not in err
    assert not (tmp_path / "out.jpg").exists() and not (tmp_path / "out_side.png").exists()


def test_box_with_a_hand_made_mask_is_refused_before_any_work(tmp_path, capsys):
    # --box crops a predicted mask; with --mask it used to be ignored without a word.
    code = main(["edit", str(tmp_path / "run"), str(tmp_path / "img.png"), "--remove-background", "--mask",
                 str(tmp_path / "m.png"), "--box", "0,0,5,5", "-o", str(tmp_path / "out.png")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--box crops the predicted mask" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_segment_train_checks_steps_and_out_before_any_work(tmp_path, capsys):
    code = main(["segment", "train", str(tmp_path / "no-run"), "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--steps must be >= 1, got 0" in err and "ckpt_every" not in err
    out = tmp_path / "head"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(b"")
    code = main(["segment", "train", str(tmp_path / "no-run"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "already holds a trained head; pick another --out" in err and "resume" not in err
    taken = tmp_path / "taken"
    taken.write_text("x")
    code = main(["segment", "train", str(tmp_path / "no-run"), "--out", str(taken / "head")])
    err = capsys.readouterr().err  # checked before the run is read: it used to fail only after the data was loaded
    assert code == 2 and f"--out {taken / 'head'}: {taken} is a file, not a directory" in err


def test_segment_with_a_run_of_another_kind_says_what_it_needs(tmp_path, capsys):
    run = tmp_path / "table-run"
    run.mkdir()
    (run / "config.json").write_text('{"kind": "table", "model": {}}')
    assert main(["segment", str(run), str(tmp_path / "x.png"), "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err  # it used to suggest `masklab segment train` on the table run
    assert "is a 'table' run; segmentation needs an MAE run (masklab pretrain mae)" in err


def test_predicting_with_an_interrupted_head_warns(workspace, tmp_path, capsys):
    import json
    import shutil

    root, run = workspace
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = copy / "segment" / "config.json"
    values = json.loads(config.read_text())
    values["train"]["steps"] = 300  # as if Ctrl-C had stopped it at step 3 of 300
    config.write_text(json.dumps(values))
    capsys.readouterr()
    assert main(["segment", str(copy), str(root / "data" / "images" / "00.png"), "-o", str(tmp_path / "m.png")]) == 0
    assert "stopped at step 3 of 300 (interrupted); its masks may be poor" in capsys.readouterr().err
    assert main(["segment", str(run), str(root / "data" / "images" / "00.png"), "-o", str(tmp_path / "n.png")]) == 0
    assert "warning" not in capsys.readouterr().err  # a finished head: no word
