"""Image folders streamed: the same batches as the in-memory loader, any image size, bad files named or counted."""

import numpy as np
import pytest
import torch

from masklab.data.image_stream import ImageFolderStream, index_image_folder
from masklab.data.images import Augment, load_images


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir()
        for i in range(6):
            h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))  # every image a different size
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def test_stream_batches_equal_in_memory(folder, tmp_path):
    memory = load_images(str(folder), image_size=(16, 16)).with_augment(Augment())
    stream = load_images(str(folder), image_size=(16, 16), stream=True, index_cache=tmp_path / "index.json")
    assert isinstance(stream, ImageFolderStream) and (tmp_path / "index.json").is_file()
    stream = stream.with_augment(Augment())
    assert len(stream) == len(memory) == 12 and stream.channels == memory.channels == 3
    assert torch.equal(stream.labels, memory.labels) and stream.class_names == memory.class_names
    indices = torch.tensor([11, 0, 5, 6])
    a = memory.get_batch(indices, torch.Generator().manual_seed(3))
    b = stream.get_batch(indices, torch.Generator().manual_seed(3))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    sub = stream.subset(torch.tensor([1, 2]))
    assert torch.equal(sub.images(), memory.subset(torch.tensor([1, 2])).images())
    cached = index_image_folder(folder, cache=tmp_path / "index.json")
    assert cached.paths == stream.paths


def test_bad_images_are_named_or_counted(folder, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "dogs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken"):
        index_image_folder(copy)
    index = index_image_folder(copy, skip_bad=True)
    assert len(index.paths) == 12 and [p.endswith("broken.png") for p in index.skipped] == [True]
    stream = ImageFolderStream.from_index(index, image_size=(8, 8))
    assert "1 unreadable skipped" in stream.name
    truncated = copy / "cats" / "0.png"
    truncated.write_bytes(truncated.read_bytes()[:60])  # the header survives, the pixels do not
    with pytest.raises(ValueError, match=r"0\.png"):
        stream.get_batch(torch.arange(12), torch.Generator())


def test_pretrain_mae_with_workers_streams_and_matches_in_memory(folder, tmp_path, monkeypatch):
    import sys

    from masklab.cli import main
    from masklab.train.progress import read_metrics

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    base = ["pretrain", "mae", "--data", str(folder), "--preset", "mae-tiny", "--image-size", "16", "--steps", "3",
            "--batch-size", "4", "--log-every", "1", "--device", "cpu"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "memory")]) == 0
    assert main([*base, "--workers", "2", "--out", str(tmp_path / "stream")]) == 0
    assert (tmp_path / "stream" / "image_index.json").is_file()
    losses = [[r["loss"] for r in read_metrics(tmp_path / run / "metrics.jsonl")] for run in ("memory", "stream")]
    assert losses[0] == losses[1] and len(losses[0]) == 3


def test_webdataset_tar_shards_give_the_same_batches(folder, tmp_path):
    import tarfile

    memory = load_images(str(folder), image_size=(16, 16))
    with tarfile.open(tmp_path / "shard-000.tar", "w") as tar:  # WebDataset layout: KEY.png + KEY.cls
        for i, (path, label) in enumerate(zip(memory.sources, memory.labels.tolist(), strict=True)):
            tar.add(path, arcname=f"{i:06d}.png")
            cls = tmp_path / "cls"
            cls.write_text(str(label))
            tar.add(cls, arcname=f"{i:06d}.cls")
    stream = load_images(str(tmp_path / "shard-000.tar"), image_size=(16, 16), stream=True)
    assert len(stream) == len(memory) and torch.equal(stream.labels, memory.labels)
    assert torch.equal(stream.images(), memory.images())
