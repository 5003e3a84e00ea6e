"""A camera photo stores its pixels turned plus an EXIF orientation tag; every reader of pictures gives the
picture as a viewer shows it (the tag applied), so a mask drawn on the shown picture lines up with it."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from masklab.data.image_files import ORIENTATION, image_pixels, open_image
from masklab.data.image_stream import ImageFolderStream, index_image_folder, index_tar_shards
from masklab.data.images import decode_image, load_image_folder

# EXIF orientation -> how to turn the stored (H, W, C) pixels into the shown ones
SHOWN = {1: lambda a: a, 3: lambda a: np.rot90(a, 2), 6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1),
         2: lambda a: a[:, ::-1]}  # fmt: skip


def _stored() -> np.ndarray:
    return (np.random.default_rng(0).random((6, 10, 3)) * 255).astype(np.uint8)  # not square: a turn shows


def _save(path, orientation: int) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(_stored()).save(path, exif=exif)


@pytest.mark.parametrize("orientation", sorted(SHOWN))
def test_open_image_applies_the_orientation_tag(tmp_path, orientation):
    path = tmp_path / "photo.png"  # PNG: lossless, so pixels compare exactly
    _save(path, orientation)
    want = SHOWN[orientation](_stored())
    np.testing.assert_array_equal(image_pixels(open_image(path), 3), want)
    with open(path, "rb") as f:  # the serve and predict paths read bytes
        got = decode_image(f.read(), image_size=want.shape[:2], channels=3)
    np.testing.assert_array_equal((got[0] * 255).round().byte().permute(1, 2, 0).numpy(), want)


def test_folders_and_tar_shards_read_turned_photos_upright(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    _save(root / "a.png", 6)
    want = np.rot90(_stored(), -1).transpose(2, 0, 1)  # (C, H, W) = (3, 10, 6)
    np.testing.assert_array_equal(load_image_folder(root).pixels[0].numpy(), want)
    stream = ImageFolderStream.from_index(index_image_folder(root), image_size=(10, 6))
    np.testing.assert_array_equal(stream.decode(0), want)
    tar_path = tmp_path / "shard.tar"
    with tarfile.open(tar_path, "w") as tar:
        data = (root / "a.png").read_bytes()
        info = tarfile.TarInfo("a.png")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tar_stream = ImageFolderStream.from_index(index_tar_shards([tar_path]), image_size=(10, 6))
    np.testing.assert_array_equal(tar_stream.decode(0), want)
