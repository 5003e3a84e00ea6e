"""Mask PNGs (binary and palette round trips, bad files) and images/ + masks/ folders."""

import numpy as np
import pytest
from PIL import Image

from masklab.data.pixel_masks import load_mask_folder, load_segmentation, read_mask, write_mask


def test_binary_round_trip(tmp_path):
    mask = np.random.default_rng(0).random((7, 9)) > 0.5
    path = write_mask(tmp_path / "m.png", mask)
    assert Image.open(path).mode == "L"
    assert set(np.unique(np.asarray(Image.open(path))).tolist()) == {0, 255}
    back = read_mask(path)
    assert back.dtype == bool and np.array_equal(back, mask)


def test_palette_round_trip(tmp_path):
    classes = np.random.default_rng(1).integers(0, 5, (6, 8))
    path = write_mask(tmp_path / "c.png", classes, num_classes=5)
    assert Image.open(path).mode == "P"
    back = read_mask(path, kind="classes")
    assert back.dtype == np.int64 and np.array_equal(back, classes)


def test_zero_one_png_reads_as_binary(tmp_path):
    a = np.zeros((4, 4), np.uint8)
    a[1:3, 1:3] = 1
    Image.fromarray(a).save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), a == 1)


@pytest.mark.parametrize(
    ("values", "message"),
    [([0, 37, 255], "not binary"), ([0, 0, 0], "is empty")],
)
def test_bad_binary_masks_name_the_file(tmp_path, values, message):
    a = np.array([values] * 3, dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "bad.png")
    with pytest.raises(ValueError, match=message) as err:
        read_mask(tmp_path / "bad.png")
    assert "bad.png" in str(err.value)


def test_colour_mask_is_refused(tmp_path):
    a = np.zeros((4, 4, 3), np.uint8)
    a[0, 0] = (255, 0, 0)
    Image.fromarray(a).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="colour"):
        read_mask(tmp_path / "rgb.png")


def _folder(root, sizes, mask_sizes=None, skip_mask=()):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, size in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.jpg")
        if i in skip_mask:
            continue
        m = np.zeros((mask_sizes or sizes)[i], bool)
        m[1:5, 2:6] = True
        write_mask(root / "masks" / f"im{i}.png", m)
    return root


def test_folder_pairs_by_stem(tmp_path):
    data = load_mask_folder(_folder(tmp_path / "d", [(8, 8), (8, 8)]))
    assert data.pixels.shape == (2, 3, 8, 8) and data.targets.shape == (2, 8, 8)
    assert data.num_classes == 2 and int(data.targets[0].sum()) == 16
    resized = load_segmentation(str(tmp_path / "d"), image_size=(4, 4))
    assert resized.targets.shape == (2, 4, 4)


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"im1\.jpg has no mask"):
        load_mask_folder(_folder(tmp_path / "a", [(8, 8), (8, 8)], skip_mask=(1,)))
    with pytest.raises(ValueError, match=r"im0\.png is 6x8 but image .*im0\.jpg is 8x8"):
        load_mask_folder(_folder(tmp_path / "b", [(8, 8)], mask_sizes=[(6, 8)]))
    with pytest.raises(ValueError, match=r"im0\.jpg is 8x8 pixels, smaller than one 16x16 patch"):
        load_mask_folder(_folder(tmp_path / "c", [(8, 8)]), min_side=16)
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        load_mask_folder(tmp_path)


def test_sixteen_bit_images_and_masks_read_as_training_reads_them(tmp_path):
    # A 16-bit image was clipped to white (PIL's convert), and a 16-bit mask with white = 65535 was refused.
    from masklab.data.image_files import image_to_array

    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    values = (np.random.default_rng(0).random((8, 8)) * 65535).astype(np.uint16)
    Image.fromarray(values).save(root / "images" / "a.png")
    mask = np.zeros((8, 8), np.uint16)
    mask[2:6, 2:6] = 65535
    Image.fromarray(mask).save(root / "masks" / "a.png")
    assert read_mask(root / "masks" / "a.png").sum() == 16
    data = load_mask_folder(root, channels=1)
    expected = image_to_array(Image.open(root / "images" / "a.png"), 1, None, 1, root / "images" / "a.png")
    np.testing.assert_array_equal(data.pixels[0].numpy(), expected)
    assert (data.pixels == 255).float().mean() < 0.05
