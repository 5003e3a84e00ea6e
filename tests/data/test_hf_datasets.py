"""Hugging Face ``datasets`` folders (save_to_disk) as --data: the same shards / tensors as the same data as files."""

import json

import numpy as np
import pytest
import torch

datasets = pytest.importorskip("datasets")

from masklab.data.hf_datasets import is_hf_dataset  # noqa: E402
from masklab.data.images import load_images  # noqa: E402
from masklab.data.shards.prepare import prepare_corpus  # noqa: E402
from masklab.data.text import read_corpus  # noqa: E402
from masklab.tokenizers.text import TextTokenizer  # noqa: E402

SMALL = dict(shard_mb=0.002, progress=False)


def shard_files(root):
    """Every file of a prepared folder but prepare.json (which records the --data path)."""
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file() and p.name != "prepare.json"}


@pytest.fixture(scope="module")
def tokenizer_file(corpus_file, tmp_path_factory):
    tokenizer = TextTokenizer.train(read_corpus(corpus_file).texts, vocab_size=60)
    return tokenizer.save(tmp_path_factory.mktemp("tok"))


def save(tmp_path, name, columns, features=None):
    path = tmp_path / name
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(path))
    return path


def test_text_column_prepares_the_same_shards_as_the_txt_file(corpus_file, tokenizer_file, tmp_path):
    lines = corpus_file.read_text(encoding="utf-8").splitlines()  # blank rows included: skipped like blank lines
    hf = save(tmp_path, "hf", {"id": list(range(len(lines))), "body": lines})  # body: the only string column
    assert is_hf_dataset(hf) and not is_hf_dataset(corpus_file)
    assert read_corpus(hf).texts == read_corpus(corpus_file).texts
    from_txt = prepare_corpus(corpus_file, tmp_path / "txt", tokenizer=tokenizer_file, workers=1, **SMALL)
    from_hf = prepare_corpus(hf, tmp_path / "from-hf", tokenizer=tokenizer_file, workers=2, **SMALL)
    assert len(json.loads((from_txt / "index.json").read_text())["shards"]) >= 4
    assert shard_files(from_hf) == shard_files(from_txt)


def test_text_column_choice_and_errors_list_the_columns(corpus_file, tokenizer_file, tmp_path):
    lines = [line for line in corpus_file.read_text(encoding="utf-8").splitlines() if line][:50]
    two = save(tmp_path, "two", {"title": ["t"] * len(lines), "body": lines, "n": list(range(len(lines)))})
    with pytest.raises(ValueError, match=r"2 string columns \(title, body\); pick one with --column.*n \(Value"):
        read_corpus(two)
    assert read_corpus(two, text_field="body").texts == lines
    with pytest.raises(ValueError, match=r"no column 'nope'; the columns are title \(Value\(string\)\)"):
        read_corpus(two, text_field="nope")
    with pytest.raises(ValueError, match="column 'n' is not a string column"):
        read_corpus(two, text_field="n")
    named = save(tmp_path, "named", {"title": ["t"] * len(lines), "text": lines})  # a "text" column is the default
    assert read_corpus(named).texts == lines
    numbers = save(tmp_path, "numbers", {"n": [1, 2]})
    with pytest.raises(ValueError, match="has no string column"):
        read_corpus(numbers)


def write_pngs(root, count=14, seed=0):
    """PNGs of mixed sizes, half in class folder ``a``, half in ``b`` (sorted paths = row order below)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        folder = root / ("a" if i < count // 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        h, w = int(rng.integers(20, 41)), int(rng.integers(20, 41))
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return sorted(paths)


@pytest.fixture(scope="module")
def image_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    paths = write_pngs(root / "folder")
    features = datasets.Features({"label": datasets.ClassLabel(names=["a", "b"]), "img": datasets.Image()})
    columns = {"label": [0 if p.parent.name == "a" else 1 for p in paths],
               "img": [{"bytes": p.read_bytes(), "path": None} for p in paths]}  # fmt: skip
    hf = root / "hf"
    datasets.Dataset.from_dict(columns, features=features).save_to_disk(str(hf))
    return root / "folder", hf


def test_image_column_gives_the_same_tensors_as_the_folder(image_pair):
    from masklab.data.image_augment import Augment

    folder, hf = image_pair
    size = (16, 16)
    want, got = load_images(str(folder), image_size=size), load_images(str(hf), image_size=size)
    assert torch.equal(want.pixels, got.pixels) and want.pixels.dtype == torch.uint8
    assert torch.equal(want.labels, got.labels) and want.class_names == got.class_names == ("a", "b")
    augment = Augment(crop_scale=(0.3, 1.0), flip=True)
    lazy_folder = load_images(str(folder), image_size=size, stream=True)
    lazy_hf = load_images(str(hf), image_size=size, stream=True)
    assert type(lazy_hf).__name__ == "HFImageStream" and len(lazy_hf) == len(lazy_folder) == 14
    pick = torch.tensor([13, 0, 7, 2])
    for a, b in ((lazy_folder, lazy_hf), (lazy_folder.subset(pick), lazy_hf.subset(pick))):
        a, b = a.with_augment(augment), b.with_augment(augment)
        rows = torch.arange(len(a))
        batch_a = a.get_batch(rows, torch.Generator().manual_seed(3))
        batch_b = b.get_batch(rows, torch.Generator().manual_seed(3))
        assert torch.equal(batch_a.images, batch_b.images) and torch.equal(batch_a.labels, batch_b.labels)
    assert torch.equal(lazy_hf.images(), want.images())


def test_image_column_choice_and_unreadable_rows(tmp_path, image_pair):
    folder, _ = image_pair
    png = next(folder.rglob("*.png")).read_bytes()
    features = datasets.Features({"x": datasets.Image(), "y": datasets.Image()})
    two = save(tmp_path, "two", {"x": [{"bytes": png, "path": None}], "y": [{"bytes": png, "path": None}]}, features)
    with pytest.raises(ValueError, match=r"2 Image columns \(x, y\); pick one with --column"):
        load_images(str(two), image_size=(8, 8))
    assert load_images(str(two), image_size=(8, 8), column="y").pixels.shape == (1, 3, 8, 8)
    bad = save(tmp_path, "bad", {"image": [{"bytes": png, "path": None}, {"bytes": b"not a png", "path": None}]},
               datasets.Features({"image": datasets.Image()}))  # fmt: skip
    with pytest.raises(ValueError, match=r"cannot read image .*bad\[1\]"):
        load_images(str(bad), image_size=(8, 8))
    kept = load_images(str(bad), image_size=(8, 8), skip_bad=True)
    assert len(kept) == 1 and "1 unreadable skipped" in kept.name
