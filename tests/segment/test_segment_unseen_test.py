"""A head's test images are kept out of the MAE's pretraining when the MAE was pretrained on another folder
(the labelled folder a subset of it): 4 of 5 test images had been MAE training images."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from masklab.cli import main
from masklab.data.images import split_indices
from masklab.data.pixel_masks import load_segmentation
from masklab.recipes.segment import split


def _folders(root):
    rng = np.random.default_rng(0)
    (root / "U" / "images").mkdir(parents=True)
    (root / "Lab" / "images").mkdir(parents=True)
    (root / "Lab" / "masks").mkdir()
    for i in range(50):
        a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(a).save(root / "U" / "images" / f"img{i:03d}.png")
        if i % 2 == 0:  # half of them have hand-made masks
            Image.fromarray(a).save(root / "Lab" / "images" / f"img{i:03d}.png")
            m = np.zeros((16, 16), np.uint8)
            m[4:12, 4:12] = 255
            Image.fromarray(m).save(root / "Lab" / "masks" / f"img{i:03d}.png")


def _mae_trained(root):
    names = sorted(p.name for p in (root / "U" / "images").iterdir())
    train, _ = split_indices(len(names), None, 0.2, 0)
    return {names[i] for i in train.tolist()}


def test_head_test_images_were_never_pretrained_on(tmp_path, capsys):
    _folders(tmp_path)
    run = tmp_path / "run"
    assert main(["pretrain", "mae", "--data", str(tmp_path / "U" / "images"), "--preset", "mae-tiny",
                 "--steps", "1", "--batch-size", "8", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    assert main(["segment", "train", str(run), "--data", str(tmp_path / "Lab"), "--steps", "1"]) == 0
    assert "the head is tested on the 3 images the encoder never saw" in capsys.readouterr().err
    info = json.loads((run / "segment" / "segment.json").read_text())
    dataset = load_segmentation(str(tmp_path / "Lab"), image_size=(16, 16), channels=3)
    test_idx = info.get("test_indices", split(dataset)[1].tolist())
    tested = {dataset.sources[i].rsplit("/", 1)[-1] for i in test_idx}
    assert len(tested) == info["num_test"] == 3  # only 3 of the 25 were held out of pretraining
    assert not tested & _mae_trained(tmp_path)
    assert info["num_train"] + info["num_test"] == 25


def test_unknown_pretraining_data_is_warned_about(tmp_path):
    from masklab.recipes.segment_split import unseen_split

    _folders(tmp_path)
    (tmp_path / "run").mkdir()
    dataset = load_segmentation(str(tmp_path / "Lab"), image_size=(16, 16), channels=3)
    with pytest.warns(UserWarning, match="may have been seen by the encoder.*records no data"):
        train_idx, test_idx, swapped = unseen_split(tmp_path / "run", dataset)
    assert swapped == 0 and torch.equal(test_idx, split(dataset)[1])
    (tmp_path / "run" / "data.json").write_text(json.dumps({"spec": str(tmp_path / "U" / "images"),
                                                           "num_train": 30, "num_test": 10}))  # fmt: skip
    with pytest.warns(UserWarning, match="holds 50 images now, not the 40"):
        unseen_split(tmp_path / "run", dataset)
    (tmp_path / "run" / "data.json").write_text(json.dumps({"spec": str(tmp_path / "U" / "images"),
                                                           "num_train": 40, "num_test": 10}))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_idx, test_idx, swapped = unseen_split(tmp_path / "run", dataset)
    assert swapped == 4 and len(test_idx) == 3 and len(train_idx) == 22
