"""Masked autoencoder (MAE) on images: pretraining, and reading an MAE run back (model, data split, features).

A run directory holds what :func:`masklab.train.fit` writes plus ``data.json`` (the data spec, image size and
the seeded train/test split), so every later task sees the same held-out examples that pretraining never
touched. Images are ``(B, C, H, W)`` floats in [0, 1]; masks follow masklab's convention (True = hidden).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from masklab.recipes.common import TrainOptions, locked_run, planned_steps, train_config, train_run
from masklab.recipes.progress import Progress, batches
from masklab.train import FitResult
from masklab.train.run import Run

DEFAULT_DATA = "builtin:mnist5k"
DATA_FILE = "data.json"
TEST_FRACTION = 0.2  # held out from pretraining, used by probe / reconstruct / quality numbers
SPLIT_SEED = 0
DEFAULT_EPOCHS = 20.0
MASK_KINDS = ("random", "block", "grid", "learned", "attention-high", "attention-low")
# Digits are not mirror-symmetric and lose their identity in small crops: gentler defaults for them.
DIGIT_DATA = ("builtin:mnist5k", "builtin:digits")


# ------------------------------------------------------------------------------------------ run + data
def read_data_info(run: str | Path) -> dict[str, Any]:
    """``RUN/data.json`` (``{}`` for a run trained without a recipe)."""
    return Run(run).read_sidecar(DATA_FILE)


def load_mae_run(run: str | Path, device: str = "cpu"):
    """The trained :class:`~masklab.models.mae.MAE` of ``run`` in eval mode (``ValueError`` if not an MAE run)."""
    return Run(run).load_model(device, kind="mae")


def recorded_spec(data: str, previous: str | None = None) -> str:
    """What a run records for ``data``: ``builtin:NAME`` as is, a path made absolute (so the run finds its data
    from any folder). ``previous``, a resumed run's recorded spec, is kept when it names the same data (an old
    run recorded the path as given, and resuming compares the sidecars)."""
    if data.startswith("builtin:"):
        return data
    absolute = str(Path(data).resolve())
    if previous and not previous.startswith("builtin:") and str(Path(previous).resolve()) == absolute:
        return previous
    return absolute


def run_data(data: str | None, recorded: str | None, where: str | Path, default: str) -> tuple[str, bool]:
    """``(spec, same)``: the data to read (``data``, else the run's ``recorded`` spec, else ``default``) and
    whether it is the run's own data (paths compared once resolved). ``where`` names the sidecar holding
    ``recorded``. An older run recorded a path relative to where it was trained: if it is not found from here
    that is an error naming ``where`` (never another same-named folder); if it is, a note names the folder used."""
    if data:
        return data, bool(recorded) and recorded_spec(data) == recorded_spec(recorded or "")
    if not recorded:
        return default, False
    if recorded.startswith("builtin:"):
        return recorded, True
    path = Path(recorded)
    if not path.is_absolute():
        if not path.exists():
            raise FileNotFoundError(f"the run's data {recorded} ({where}; recorded relative to where it was trained) "
                                    f"is not found from here ({Path.cwd()}); pass --data")  # fmt: skip
        print(f"masklab: note: {where} records the relative path {recorded} (as given where the run was trained); "
              f"using {path.resolve()}, found from the current folder", file=sys.stderr)  # fmt: skip
        return str(path.resolve()), True
    if not path.exists():
        raise FileNotFoundError(f"the run's data {recorded} ({where}) no longer exists; pass --data")
    return recorded, True


def load_split(spec: str | None, run: str | Path, model, *, skip_bad: bool = False):
    """``(dataset, train_idx, test_idx)`` for ``spec`` (default: the run's data) at the model's size/channels.

    The run's own data (the same path once resolved) gets the run's split (its test examples were never trained
    on); other data gets a fresh split with the default fraction and seed.
    """
    from masklab.data.images import load_images, split_indices

    info = read_data_info(run)
    spec, same = run_data(spec, info.get("spec"), Path(run) / DATA_FILE, DEFAULT_DATA)
    cfg = model.config
    dataset = load_images(
        spec, image_size=cfg.image_size, channels=cfg.channels, skip_bad=skip_bad, min_side=cfg.patch_size
    )
    fraction = info.get("test_fraction", TEST_FRACTION) if same else TEST_FRACTION
    seed = info.get("split_seed", SPLIT_SEED) if same else SPLIT_SEED
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, fraction, seed, names=dataset.class_names)
    return dataset, train_idx, test_idx


def encode_all(model, images_of: Callable[[slice], torch.Tensor], count: int, batch_size: int = 256,
               progress: Progress | None = None, stage: str = "encoding images") -> np.ndarray:  # fmt: skip
    """Features ``(count, D)`` float32: ``images_of(slice)`` yields CPU image batches ``(b, C, H, W)``;
    ``progress`` hears ``stage`` per batch (:mod:`masklab.recipes.progress`)."""
    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for part in batches(count, batch_size, progress, stage):
            chunks.append(model.embed(images_of(part).to(device)).float().cpu())
    return torch.cat(chunks).numpy()


# ------------------------------------------------------------------------------------------ pretrain
def _augment(no_augment: bool, crop_scale, flip: bool | None, spec: str):
    from masklab.data.images import Augment

    if no_augment:
        return None
    digits = spec in DIGIT_DATA
    scale = tuple(crop_scale) if crop_scale else ((0.6, 1.0) if digits else (0.2, 1.0))
    return Augment(crop_scale=scale, flip=(not digits) if flip is None else flip)


def pretrain_mae(
    out: str | Path,
    *,
    data: str = DEFAULT_DATA,
    preset: str = "mae-small-28",
    image_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
    mask: str = "random",
    mask_ratio: float = 0.75,
    variant: str = "mae",
    norm_pix_loss: bool = False,
    crop_scale: tuple[float, float] | None = None,
    flip: bool | None = None,
    no_augment: bool = False,
    skip_bad: bool = False,
    column: str | None = None,
    train: TrainOptions | None = None,
    resume: bool = False,
) -> FitResult:
    """Pretrain an MAE on ``data`` (folder, ``.npy``/``.npz``, Hugging Face ``datasets`` folder with ``column``
    its Image column, or ``builtin:NAME``) into the run ``out``.

    ``mask`` picks which patches are hidden (``random`` MAE, ``block`` BEiT, ``grid``, ``learned``,
    ``attention-high``/``-low``), ``mask_ratio`` the fraction hidden (in [0, 1)). ``variant="simmim"`` feeds
    mask tokens to the encoder. 20% of the images (seeded, stratified) are held out and recorded in
    ``data.json``. Budget, optimiser and engine come from ``train`` (defaults per preset; 20 epochs). With
    ``resume=True`` the same arguments continue the run (a longer ``steps`` extends it).
    """
    import dataclasses

    from masklab.core.contract import preset_config, saved_config
    from masklab.data.images import load_images, split_indices
    from masklab.models.mae import MAE, TRAIN_DEFAULTS, MAEConfig
    from masklab.models.mae import PRESETS as MAE_PRESETS

    run = Run(out)
    train = train or TrainOptions()
    arguments = {
        "data": data, "preset": preset, "image_size": image_size, "patch_size": patch_size, "mask": mask,
        "mask_ratio": mask_ratio, "variant": variant, "norm_pix_loss": norm_pix_loss, "crop_scale": crop_scale,
        "flip": flip, "no_augment": no_augment, "skip_bad": skip_bad, "column": column, "train": train.to_dict(),
    }  # fmt: skip
    with locked_run(run):  # before any data is read (the image index is written into the run)
        if not resume:
            run.check_fresh()
        if preset not in MAE_PRESETS:
            raise ValueError(f"unknown --preset {preset!r}; known: {', '.join(MAE_PRESETS)}")
        if mask not in MASK_KINDS:
            raise ValueError(f"unknown --mask {mask!r}; known: {', '.join(MASK_KINDS)}")
        if not 0 <= mask_ratio < 1:
            raise ValueError(f"--mask-ratio must be in [0, 1) (1 would hide every patch), got {mask_ratio}")
        size = (int(image_size[0]), int(image_size[-1])) if image_size is not None else None
        if size is None and Path(data).is_dir():  # folders are resized to the preset size; arrays keep theirs
            size = MAE_PRESETS[preset]["image_size"]
        patch = patch_size or MAE_PRESETS[preset]["patch_size"]
        # With --workers a folder (or WebDataset tars) is indexed once and decoded per batch in the workers.
        dataset = load_images(data, image_size=size, channels=None, skip_bad=skip_bad, min_side=patch,
                              stream=bool(train and train.workers), index_cache=Path(out) / "image_index.json",
                              column=column)  # fmt: skip
        height, width = dataset.image_size
        if height % patch or width % patch:  # before the model's own check, with what to do about it
            fits = [n for n, p in MAE_PRESETS.items() if not height % p["patch_size"] and not width % p["patch_size"]]
            whose = f"--preset {preset}'s patch size" if patch_size is None else "--patch-size"
            raise ValueError(f"--data {data} is {height}x{width} pixels, not a multiple of {whose} {patch}: pick "
                             f"--preset {' | '.join(fits) or '...'} or set --patch-size / --image-size")  # fmt: skip
        train_idx, test_idx = split_indices(len(dataset), dataset.labels, TEST_FRACTION, SPLIT_SEED,
                                            names=dataset.class_names)  # fmt: skip
        augment = _augment(no_augment, crop_scale, flip, data)
        train_data = dataset.subset(train_idx).with_augment(augment)
        mean, std = train_data.pixel_stats()
        model_config = preset_config(
            MAEConfig, MAE_PRESETS,
            preset, image_size=dataset.image_size, patch_size=patch, channels=dataset.channels,
            mask_ratio=mask_ratio, mask_kind=mask, variant=variant, norm_pix_loss=norm_pix_loss,
            pixel_mean=mean, pixel_std=std,
        )  # fmt: skip
        seed = train.seed_or_0
        torch.manual_seed(seed)  # the initial weights
        model = MAE(model_config)
        defaults = TRAIN_DEFAULTS[preset]
        options = train.with_defaults(
            batch_size=defaults["batch_size"], lr=defaults["lr"], weight_decay=0.05, seed=0, device="auto",
            ckpt_every=100, log_every=10,
        )  # fmt: skip
        options = dataclasses.replace(options, batch_size=min(options.batch_size or 1, len(train_data)))
        cfg = train_config(
            options, model, train_data,
            default_steps=lambda b: max(1, int(np.ceil(DEFAULT_EPOCHS * len(train_data) / b))),
            warmup=lambda steps: int(defaults["warmup_fraction"] * steps),
        )  # fmt: skip
        info = {
            "spec": recorded_spec(data, run.read_sidecar(DATA_FILE).get("spec") if resume else None),
            "image_size": list(dataset.image_size), "channels": dataset.channels,
            "test_fraction": TEST_FRACTION, "split_seed": SPLIT_SEED, "skip_bad": skip_bad, "column": column,
            "num_train": len(train_data), "num_test": len(test_idx),
            "augment": None if augment is None else dataclasses.asdict(augment),
        }  # fmt: skip
        from masklab.recipes.embedding import note_skipped

        note_skipped(getattr(dataset, "skipped", ()), "image")  # named (the dataset's name only counts them)
        print(f"pretraining MAE on {dataset.name}: {len(train_data)} train / {len(test_idx)} held-out images "
              f"{dataset.channels}x{dataset.image_size[0]}x{dataset.image_size[1]}, {planned_steps(cfg)}, "
              f"{sum(p.numel() for p in model.parameters()):,} parameters -> {run.path}")  # fmt: skip
        result = train_run(run, model, train_data, cfg, model_config=saved_config(model), recipe="pretrain_mae",
                           arguments=arguments, sidecars={DATA_FILE: info}, resume=resume)  # fmt: skip
        print(f"done: step {result.step}, loss {result.last_metrics.get('loss', float('nan')):.4f}; run saved in {out}")
        return result
