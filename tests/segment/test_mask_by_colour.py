"""Binary mask PNGs are read by what they show: a palette PNG by its colours, a transparent PNG by its alpha."""

import numpy as np
import pytest
from PIL import Image

from masklab.data.pixel_masks import read_mask


@pytest.fixture
def truth():
    t = np.zeros((32, 32), bool)
    t[4:12, 4:12] = True  # a small subject: background is the majority
    return t


def test_palette_mask_is_read_by_colour_not_index(tmp_path, truth):
    # PIL's own quantize puts white at index 0: reading indices inverted the mask (960 pixels, not 64).
    rgb = np.repeat((truth * 255).astype(np.uint8)[..., None], 3, 2)
    img = Image.fromarray(rgb).quantize(2)
    assert img.getpalette()[:3] == [255, 255, 255]
    img.save(tmp_path / "q.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "q.png"), truth)
    # class indices keep index semantics
    np.testing.assert_array_equal(read_mask(tmp_path / "q.png", kind="classes"), np.where(truth, 0, 1))


def test_palette_mask_in_colour_is_refused_naming_the_file(tmp_path, truth):
    img = Image.fromarray(truth.astype(np.uint8), "P")
    img.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # VOC-like: the subject is dark red
    img.save(tmp_path / "voc.png")
    with pytest.raises(ValueError, match=r"voc\.png is a palette PNG with colours that are not gray"):
        read_mask(tmp_path / "voc.png")


@pytest.mark.parametrize("rgb", [255, 0])
def test_alpha_marks_the_subject_when_the_colour_is_uniform(tmp_path, truth, rgb):
    a = np.zeros((32, 32, 4), np.uint8)
    a[..., :3] = rgb
    a[..., 3] = np.where(truth, 255, 0)
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png"), truth)
    la = np.stack([np.full((32, 32), rgb, np.uint8), a[..., 3]], -1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), truth)


def test_alpha_with_invisible_colour_under_transparency(tmp_path, truth):
    # transparent pixels saved as (0, 0, 0, 0), the subject white and opaque: the visible colour is uniform
    a = np.zeros((32, 32, 4), np.uint8)
    a[truth] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "cut.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "cut.png"), truth)


def test_alpha_and_varying_colour_is_refused_naming_the_file(tmp_path, truth):
    a = np.zeros((32, 32, 4), np.uint8)
    a[..., 0] = np.arange(32, dtype=np.uint8)[None] * 8  # a picture, not a mask
    a[..., 3] = np.where(truth, 255, 0)
    Image.fromarray(a, "RGBA").save(tmp_path / "photo.png")
    with pytest.raises(ValueError, match=r"photo\.png is transparent in places"):
        read_mask(tmp_path / "photo.png")


def test_soft_alpha_is_not_binary(tmp_path, truth):
    a = np.full((32, 32, 4), 255, np.uint8)
    a[..., 3] = np.where(truth, 255, 0)
    a[0, 0, 3] = 128
    Image.fromarray(a, "RGBA").save(tmp_path / "soft.png")
    with pytest.raises(ValueError, match=r"soft\.png is not binary: its alpha channel"):
        read_mask(tmp_path / "soft.png")


def test_opaque_rgba_is_read_by_its_gray(tmp_path, truth):
    a = np.full((32, 32, 4), 255, np.uint8)
    a[..., :3] = np.where(truth, 255, 0)[..., None]
    Image.fromarray(a, "RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "opaque.png"), truth)
