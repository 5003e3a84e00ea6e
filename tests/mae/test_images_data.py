"""Image data: folders (recursive, class subfolders), arrays, built-ins, augmentation, splits, bad inputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.data.images import (
    Augment,
    ImageDataset,
    load_images,
    random_resized_crop,
    read_image_paths,
    split_indices,
)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        for i in range(3):
            _save(tmp_path / "data" / cls / "deep" / f"{i}.png", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
    return tmp_path / "data"


def test_folder_is_recursive_and_subfolders_are_labels(folder):
    ds = load_images(str(folder), image_size=(16, 16))
    assert len(ds) == 6 and ds.channels == 3 and ds.image_size == (16, 16)
    assert ds.class_names == ("cats", "dogs") and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_gray_folder_gives_one_channel_and_flat_folder_no_labels(tmp_path):
    for i in range(2):
        _save(tmp_path / f"{i}.png", np.full((8, 8), 100 * i, dtype=np.uint8))
    ds = load_images(str(tmp_path))
    assert ds.channels == 1 and ds.labels is None
    torch.testing.assert_close(ds.images()[1], torch.full((1, 8, 8), 100 / 255))


def test_corrupt_image_names_the_file_or_is_skipped(folder):
    bad = folder / "cats" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_images(str(folder), image_size=(16, 16))
    ds = load_images(str(folder), image_size=(16, 16), skip_bad=True)
    assert len(ds) == 6 and "1 unreadable skipped" in ds.name


def test_an_image_smaller_than_a_patch_is_bad(folder, tmp_path):
    """A 1x1 file names itself as an error, or with skip_bad is left out and listed (folder and stream index)."""
    from masklab.data.image_stream import index_image_folder

    _save(folder / "dogs" / "dot.png", np.zeros((1, 1, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"dot\.png is 1x1 pixels, smaller than one 4x4 patch"):
        load_images(str(folder), image_size=(16, 16), min_side=4)
    ds = load_images(str(folder), image_size=(16, 16), min_side=4, skip_bad=True)
    assert len(ds) == 6 and ds.skipped == (str(folder / "dogs" / "dot.png"),)
    assert len(ds.subset(torch.arange(2)).skipped) == 1
    with pytest.raises(ValueError, match=r"dot\.png"):
        index_image_folder(folder, min_side=4)
    index = index_image_folder(folder, min_side=4, skip_bad=True, cache=tmp_path / "index.json")
    assert index.skipped == (str(folder / "dogs" / "dot.png"),) and len(index.paths) == 6


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="no images found under"):
        load_images(str(tmp_path))


def test_missing_path_and_unknown_builtin(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_images(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="unknown built-in dataset 'cifar'"):
        load_images("builtin:cifar")


def test_image_smaller_than_a_patch_names_the_file(tmp_path):
    _save(tmp_path / "tiny.png", np.zeros((3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"tiny\.png is 3x3 pixels, smaller than one 4x4 patch"):
        read_image_paths([tmp_path / "tiny.png"], image_size=(8, 8), channels=1, min_side=4)


def test_colour_image_for_gray_model_is_an_error(folder):
    path = next(folder.rglob("*.png"))
    with pytest.raises(ValueError, match=r"1-channel .* 3 colour channels"):
        read_image_paths([path], image_size=(8, 8), channels=1)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_array_layouts(tmp_path, layout):
    base = np.random.default_rng(0).integers(0, 255, (5, 12, 10, 3), dtype=np.uint8)
    array = {"nhw": base[..., 0], "nhwc": base, "nchw": base.transpose(0, 3, 1, 2)}[layout]
    np.save(tmp_path / "x.npy", array)
    ds = load_images(str(tmp_path / "x.npy"))
    assert ds.image_size == (12, 10) and ds.channels == (1 if layout == "nhw" else 3)


def test_npz_with_labels_and_wrong_channels(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.rand(6, 8, 8).astype(np.float32), y=np.arange(6) % 2)
    ds = load_images(str(tmp_path / "d.npz"))
    assert ds.labels.tolist() == [0, 1, 0, 1, 0, 1] and ds.pixels.dtype == torch.float32
    with pytest.raises(ValueError, match="has 1-channel images; the model takes 3"):
        load_images(str(tmp_path / "d.npz"), channels=3)


def test_float_array_out_of_range(tmp_path):
    np.save(tmp_path / "x.npy", np.full((2, 8, 8), -3.0))
    with pytest.raises(ValueError, match=r"expected uint8 0\.\.255 or floats in"):
        load_images(str(tmp_path / "x.npy"))


def test_builtins_load():
    mnist = load_images("builtin:mnist5k")
    assert len(mnist) == 5000 and mnist.image_size == (28, 28) and mnist.channels == 1
    assert torch.bincount(mnist.labels).tolist() == [500] * 10
    digits = load_images("builtin:digits")
    assert digits.image_size == (8, 8) and float(digits.images().max()) == 1.0
    photos = load_images("builtin:photos")
    assert photos.channels == 3 and photos.image_size == (32, 32) and len(photos) > 300


def test_stratified_split_is_seeded_and_disjoint():
    labels = torch.arange(10).repeat_interleave(50)  # sorted by class, like mnist5k
    train, test = split_indices(500, labels, 0.2, seed=0)
    assert len(test) == 100 and torch.bincount(labels[test]).tolist() == [10] * 10
    assert not set(train.tolist()) & set(test.tolist())
    again = split_indices(500, labels, 0.2, seed=0)
    assert torch.equal(again[1], test) and not torch.equal(split_indices(500, labels, 0.2, seed=1)[1], test)


def test_augmentation_uses_only_the_generator():
    images = torch.rand(4, 3, 16, 16)
    aug = Augment()
    a = random_resized_crop(images, torch.Generator().manual_seed(5), aug)
    b = random_resized_crop(images, torch.Generator().manual_seed(5), aug)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == images.shape and not torch.allclose(a, images)


def test_full_crop_without_flip_is_identity():
    images = torch.rand(2, 1, 8, 8)
    out = random_resized_crop(images, torch.Generator().manual_seed(0), Augment(crop_scale=(1.0, 1.0),
                              crop_ratio=(1.0, 1.0), flip=False))  # fmt: skip
    torch.testing.assert_close(out, images, rtol=1e-5, atol=1e-5)


def test_get_batch_and_stats():
    ds = ImageDataset(torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8), torch.arange(10) % 2)
    batch = ds.with_augment(Augment()).get_batch(torch.tensor([1, 3]), torch.Generator().manual_seed(0))
    assert batch.images.shape == (2, 1, 8, 8) and batch.labels.tolist() == [1, 1]
    mean, std = ds.pixel_stats()
    assert mean[0] == pytest.approx(float(ds.images().mean()), abs=1e-6)
    assert std[0] == pytest.approx(float(ds.images().double().std()), abs=1e-6)
