"""The data split of a segmentation head: its test images kept out of the MAE's pretraining.

:func:`split` is the split MAE pretraining uses for the same images; :func:`unseen_split` also swaps held-out
images the MAE was pretrained on (another folder, told apart by file content) for unseen ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from masklab.data.images import split_indices
from masklab.data.pixel_masks import SegmentationDataset

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def split(dataset: SegmentationDataset, fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED):
    """``(train_idx, test_idx)``: the split MAE pretraining uses for the same unlabelled images."""
    return split_indices(len(dataset), None, fraction, seed)


def _digest(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def encoder_seen(run: str | Path, dataset: SegmentationDataset) -> tuple[Tensor | None, str]:
    """``(seen bool (N,), "")``: which images of ``dataset`` were in the MAE's pretraining split (by file
    content, from ``RUN/data.json``), or ``(None, why)`` when that cannot be told."""
    import warnings

    from masklab.data.hf_datasets import is_hf_dataset
    from masklab.data.images import IMAGE_SUFFIXES
    from masklab.recipes.mae import DATA_FILE, read_data_info

    info = read_data_info(run)
    spec = info.get("spec")
    seen = torch.zeros(len(dataset), dtype=torch.bool)
    if not spec:
        return None, f"{Path(run) / DATA_FILE} records no data"
    if spec.startswith("builtin:"):
        if spec == f"builtin:{dataset.name}" and (info.get("test_fraction"), info.get("split_seed")) == (
            TEST_FRACTION, SPLIT_SEED):  # fmt: skip
            seen[split(dataset)[0]] = True  # the same images, split the same way
        return seen, ""  # a built-in's images are not files of a folder
    if dataset.name.startswith("synthetic-subjects"):
        return seen, ""
    root = Path(spec)
    if not root.is_dir() or is_hf_dataset(root) or any(root.glob("*.tar")):
        return None, f"the MAE's data {spec} ({Path(run) / DATA_FILE}) is not a folder of image files"
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    expected = int(info.get("num_train", 0)) + int(info.get("num_test", 0))
    if len(paths) != expected:
        return None, f"the MAE's folder {spec} holds {len(paths)} images now, not the {expected} it was split from"
    rel = [p.relative_to(root) for p in paths]
    labels = None
    if all(len(r.parts) > 1 for r in rel):  # as load_image_folder labels a folder of class subfolders
        classes = sorted({r.parts[0] for r in rel})
        labels = torch.tensor([classes.index(r.parts[0]) for r in rel])
    with warnings.catch_warnings():  # pretraining already warned about its split
        warnings.simplefilter("ignore")
        mae_train, _ = split_indices(len(paths), labels, float(info.get("test_fraction", TEST_FRACTION)),
                                     int(info.get("split_seed", SPLIT_SEED)))  # fmt: skip
    ours = [Path(s) for s in dataset.sources]
    sizes = {p.stat().st_size for p in ours}
    trained = {_digest(paths[i]) for i in mae_train.tolist() if paths[i].stat().st_size in sizes}
    return torch.tensor([_digest(p) in trained for p in ours], dtype=torch.bool), ""


def unseen_split(run: str | Path, dataset: SegmentationDataset) -> tuple[Tensor, Tensor, int]:
    """``(train_idx, test_idx, swapped)``: :func:`split`, with held-out images the MAE of ``run`` trained on
    (:func:`encoder_seen`) swapped for unseen ones (a seeded draw); ``swapped`` counts them. Warns when it
    cannot be told, or when every image was pretrained on."""
    import warnings

    train_idx, test_idx = split(dataset)
    seen, why = encoder_seen(run, dataset)
    if seen is None:
        warnings.warn(f"the head's test images may have been seen by the encoder in pretraining: {why}", stacklevel=2)
        return train_idx, test_idx, 0
    swapped = int(seen[test_idx].sum())
    if swapped == 0:
        return train_idx, test_idx, 0
    unseen = torch.nonzero(~seen)[:, 0]
    if len(unseen) == 0:
        warnings.warn(f"every image of {dataset.name} was in the MAE's pretraining split: the head's test scores "
                      "are on images the encoder was trained on", stacklevel=2)  # fmt: skip
        return train_idx, test_idx, 0
    g = torch.Generator().manual_seed(SPLIT_SEED)
    test_idx = unseen[torch.randperm(len(unseen), generator=g)][: len(test_idx)].sort().values
    keep = torch.ones(len(dataset), dtype=torch.bool)
    keep[test_idx] = False
    return torch.nonzero(keep)[:, 0], test_idx, swapped


def validation_split(train_idx: Tensor, fraction: float, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """``(fit_idx, val_idx)``: a seeded ``fraction`` of the training split held out for choosing settings, so
    the test split is scored only once, with settings fixed beforehand."""
    fit_pos, val_pos = split_indices(len(train_idx), None, fraction, seed + 1)
    return train_idx[fit_pos], train_idx[val_pos]
