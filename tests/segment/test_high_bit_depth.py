"""16/32-bit gray pictures are rescaled to 8 bits the way training reads them (``image_files.to_8bit``) by
every reader: ``masklab segment``'s and ``masklab edit``'s images, not clipped to white by PIL's ``convert``."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main
from masklab.data.image_files import image_pixels, image_to_array, open_image
from masklab.data.pixel_masks import write_mask


def gray16(seed: int = 0, shape=(12, 16)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 65535).astype(np.uint16)


def rgb16_png(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one) for ``uint16 (H, W, 3)``."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.fixture
def files(tmp_path):
    """The same 16-bit values as a PNG (I;16), a TIFF (I;16), a 32-bit int TIFF (I) and a float TIFF (F)."""
    a = gray16()
    paths = {"png16": tmp_path / "g16.png", "tif16": tmp_path / "g16.tif", "tif32": tmp_path / "g32.tif",
             "tifF": tmp_path / "gF.tif"}  # fmt: skip
    Image.fromarray(a).save(paths["png16"])
    Image.fromarray(a).save(paths["tif16"])
    Image.fromarray(a.astype(np.int32)).save(paths["tif32"])
    Image.fromarray(a.astype(np.float32)).save(paths["tifF"])
    expected = np.clip(a / 65535.0 * 255.0, 0, 255).astype(np.uint8)  # (H, W): training's rescaling
    return paths, expected


def test_every_mode_is_rescaled_as_training_reads_it(files):
    paths, expected = files
    for name, path in paths.items():
        img = open_image(path)
        assert img.mode in ("I;16", "I", "F"), (name, img.mode)
        training = image_to_array(open_image(path), 1, None, 1, path)[0]  # (H, W)
        np.testing.assert_array_equal(training, expected, err_msg=name)
        np.testing.assert_array_equal(image_pixels(img, 1)[..., 0], expected, err_msg=name)
        np.testing.assert_array_equal(image_pixels(img, 3), np.repeat(expected[..., None], 3, axis=2), err_msg=name)


def test_a_float_image_in_0_1_is_read_as_intensities_not_as_nearly_black(tmp_path):
    # the float convention (scikit-image, torchvision): it used to be divided by 255, i.e. read as 0 or 1 of 255
    a = np.random.default_rng(1).random((12, 16)).astype(np.float32)
    a[0, 0], a[0, 1] = 0.0, 1.0
    path = tmp_path / "unit.tif"
    Image.fromarray(a).save(path)
    expected = np.clip(a.astype(np.float64) * 255.0, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(image_pixels(open_image(path), 1)[..., 0], expected)
    np.testing.assert_array_equal(image_to_array(open_image(path), 1, None, 1, path)[0], expected)
    above = tmp_path / "above.tif"  # one value past 1: the whole image is read on the 0-255 scale
    Image.fromarray(np.where(a > 0.5, a * 200, a).astype(np.float32)).save(above)
    assert image_pixels(open_image(above), 1).max() == 200


def test_segment_and_edit_readers_rescale(files):
    from masklab.recipes import edit, segment

    paths, expected = files
    for name, path in paths.items():
        for channels in (1, 3):
            want = np.repeat(expected[..., None], channels, axis=2)  # (H, W, C)
            got = edit.read_image(path, channels)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, want, err_msg=name)
            tensor = segment.read_image(path, channels)  # (C, H, W) in [0, 1]
            np.testing.assert_array_equal((tensor * 255).round().byte().permute(1, 2, 0).numpy(), want, err_msg=name)
            assert 0.4 < float(tensor.mean()) < 0.6  # uniform noise: mid-gray, not white


def test_16_bit_rgb_keeps_each_value_s_high_byte(tmp_path):
    from masklab.recipes import edit

    a = (np.random.default_rng(2).random((10, 14, 3)) * 65535).astype(np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(rgb16_png(a))
    np.testing.assert_array_equal(edit.read_image(path, 3), (a >> 8).astype(np.uint8))
    assert image_pixels(Image.open(io.BytesIO(rgb16_png(a))), 3).dtype == np.uint8


def test_edit_of_a_16_bit_image_is_8_bit_and_not_white(files, tmp_path, capsys):
    paths, expected = files
    subject = np.zeros(expected.shape, dtype=bool)
    subject[3:8, 4:11] = True
    mask = write_mask(tmp_path / "hand.png", subject)
    background = tmp_path / "bg16.tif"
    Image.fromarray(gray16(seed=5)).save(background)
    bg_expected = np.clip(gray16(seed=5) / 65535.0 * 255.0, 0, 255).astype(np.uint8)
    for flag in (["--blur-background"], ["--replace-background", str(background)], ["--remove-background"]):
        out = tmp_path / "out.png"
        # With --mask and a background edit the run is never loaded: tmp_path stands in for it.
        assert main(["edit", str(tmp_path), str(paths["png16"]), *flag, "--mask", str(mask), "-o", str(out)]) == 0
        got = np.asarray(Image.open(out))
        assert got.dtype == np.uint8, flag
        rgb = got[..., :3]
        assert (rgb == 255).mean() < 0.05, flag  # was 96.6% white
        np.testing.assert_array_equal(rgb[subject], np.repeat(expected[subject][:, None], 3, axis=1), err_msg=flag[0])
        if flag[0] == "--replace-background":
            np.testing.assert_array_equal(rgb[~subject], np.repeat(bg_expected[~subject][:, None], 3, axis=1))
