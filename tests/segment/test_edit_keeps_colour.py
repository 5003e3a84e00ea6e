"""``masklab edit`` with a gray (1-channel) MAE on a colour photo: the photo keeps its colour. Before, the
image was read with the MAE's channel count, so every pixel outside the subject turned gray although only the
pixels under the mask may change."""

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.cli import main
from masklab.data.pixel_masks import write_mask


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray")
    rng = np.random.default_rng(0)
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "masks").mkdir()
    for i in range(16):
        subject = np.zeros((16, 16), dtype=bool)
        y, x = rng.integers(0, 8, 2)
        subject[y : y + 6, x : x + 6] = True
        picture = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        picture[subject] = 230
        Image.fromarray(picture).save(root / "data" / "images" / f"{i:02d}.png")
        write_mask(root / "data" / "masks" / f"{i:02d}.png", subject)
    run = root / "run"
    assert main(["pretrain", "mae", "--data", str(root / "data" / "images"), "--preset", "mae-tiny",
                 "--steps", "2", "--batch-size", "8", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    return root, run


@pytest.fixture
def photo(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    pixels[..., 0] = 250  # clearly colour
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    mask = np.zeros((16, 16), dtype=bool)
    mask[3:9, 5:12] = True
    return tmp_path / "photo.png", pixels, write_mask(tmp_path / "hand.png", mask), mask


def test_remove_subject_with_a_gray_mae_keeps_a_colour_photo(gray_run, photo, tmp_path, capsys):
    _, run = gray_run
    path, before, mask_path, mask = photo
    out = tmp_path / "removed.png"
    assert main(["edit", str(run), str(path), "--remove-subject", "--mask", str(mask_path), "-o", str(out)]) == 0
    after = np.asarray(Image.open(out))
    assert after.shape == before.shape  # still RGB
    assert np.array_equal(after[~mask], before[~mask])  # byte-identical outside the mask
    inside = after[mask]
    assert (inside[:, 0] == inside[:, 1]).all() and (inside[:, 1] == inside[:, 2]).all()  # the gray fill
    assert "filled in gray" in capsys.readouterr().err


def test_background_edit_with_a_gray_head_keeps_the_subject_colour(gray_run, photo, tmp_path, monkeypatch):
    from masklab.recipes import segment

    root, run = gray_run
    assert main(["segment", "train", str(run), "--data", str(root / "data"), "--steps", "2"]) == 0
    path, before, _, mask = photo
    real = segment.predict_mask

    def predicted(seg, image, box=None):  # the head runs on what it takes; a head trained 2 steps finds little
        assert image.shape[0] == seg.mae.config.channels
        real(seg, image, box)
        return torch.from_numpy(mask.astype(np.int64))

    monkeypatch.setattr(segment, "predict_mask", predicted)
    out = tmp_path / "blur.png"
    assert main(["edit", str(run), str(path), "--blur-background", "-o", str(out)]) == 0
    after = np.asarray(Image.open(out))
    assert after.shape == before.shape and np.array_equal(after[mask], before[mask])  # subject kept, in colour
