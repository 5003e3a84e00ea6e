"""Fitting a folder to the model's size (cover + centre crop) must not cut a subject away without a word: a
subject at the edge of a non-square image was cropped out and trained as all background."""

import numpy as np
import pytest
from PIL import Image

from masklab.data.pixel_masks import load_mask_folder


def _folder(root, size, box, n=3):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / "images" / f"i{i}.png")
        m = np.zeros(size, np.uint8)
        m[box] = 255
        Image.fromarray(m).save(root / "masks" / f"i{i}.png")
    return root


def test_subject_cropped_away_is_an_error_naming_the_file(tmp_path):
    root = _folder(tmp_path / "d", (10, 60), np.s_[2:8, 3:9])  # subject at the left end of a wide image
    with pytest.raises(ValueError, match=r"i0\.png: its subject lies outside the centre crop"):
        load_mask_folder(root, image_size=(32, 32))


def test_subject_partly_cropped_is_warned_about_once(tmp_path):
    root = _folder(tmp_path / "d", (10, 60), np.s_[2:8, 20:32])  # half of it left of the kept centre 25..35
    with pytest.warns(UserWarning, match=r"cuts away over a quarter of the subject of 3 of 3 masks") as record:
        data = load_mask_folder(root, image_size=(32, 32))
    assert len([w for w in record if "cuts away" in str(w.message)]) == 1
    assert data.targets.sum() > 0


def test_centred_subject_is_quiet(tmp_path, recwarn):
    root = _folder(tmp_path / "d", (10, 60), np.s_[2:8, 27:33])
    data = load_mask_folder(root, image_size=(32, 32))
    assert data.targets.sum() > 0 and not [w for w in recwarn if "cuts away" in str(w.message)]


def test_gray_binary_masks_read_as_classes_are_refused_naming_the_file(tmp_path):
    # a 0/255 mask read as class indices gave num_classes=256
    root = _folder(tmp_path / "d", (8, 8), np.s_[2:6, 2:6])
    with pytest.raises(ValueError, match=r"i0\.png holds class id 255, but the masks hold only the ids 0, 255"):
        load_mask_folder(root, kind="classes")


def test_class_ids_with_a_small_gap_are_warned_about(tmp_path):
    root = _folder(tmp_path / "d", (8, 8), np.s_[2:6, 2:6])
    for i, c in enumerate((1, 3, 1)):
        m = np.zeros((8, 8), np.uint8)
        m[2:6, 2:6] = c
        Image.fromarray(m).save(root / "masks" / f"i{i}.png")
    with pytest.warns(UserWarning, match=r"class ids 2 of 0\.\.3 appear in no mask"):
        assert load_mask_folder(root, kind="classes").num_classes == 4
