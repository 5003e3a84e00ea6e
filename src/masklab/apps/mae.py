"""Masked autoencoder (MAE) on images: pretrain, embed, probe and fine-tune.

A run directory holds what :func:`masklab.train.fit` writes plus ``data.json`` (the ``--data`` value, image
size and the seeded train/test split), so every later command sees the same held-out examples that
pretraining never touched. Only the standard library is imported at module level (the CLI imports this to
build ``--help``); torch and the model are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from masklab.apps import fit_run, read_run_info
from masklab.commands._common import parse_hw
from masklab.commands._train_args import add_engine_args, engine_fields

DEFAULT_DATA = "builtin:mnist5k"
DATA_FILE = "data.json"
TEST_FRACTION = 0.2  # held out from pretraining, used by probe / reconstruct / quality numbers
SPLIT_SEED = 0
# Digits are not mirror-symmetric and lose their identity in small crops: gentler defaults for them.
_DIGIT_DATA = ("builtin:mnist5k", "builtin:digits")


def _image_size(text: str) -> tuple[int, int]:
    return parse_hw(text, "an image size like 28 or 32x48")


def add_pretrain_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default=DEFAULT_DATA, help=f"folder, .npy/.npz, or builtin:NAME (default {DEFAULT_DATA})"
    )
    parser.add_argument("--preset", default="mae-small-28", help="mae-tiny | mae-small-28 | mae-vit-t | mae-vit-b")
    parser.add_argument("--image-size", type=_image_size, default=None, help="resize to HxW (default: data/preset)")
    parser.add_argument("--patch-size", type=int, default=None, help="override the preset's patch size")
    parser.add_argument("--mask-ratio", type=float, default=0.75, help="fraction of patches hidden (default 0.75)")
    parser.add_argument("--mask", "--mask-kind", dest="mask_kind", default="random",
                        choices=("random", "block", "grid", "learned", "attention-high", "attention-low"),
                        help="which patches to hide: random (MAE), block (BEiT), grid, learned (an adversarial "
                        "masker trained to maximise the loss), attention-high/-low (the patches the encoder's "
                        "[CLS] attention ranks highest/lowest, AttMask)")  # fmt: skip
    parser.add_argument("--variant", choices=("mae", "simmim"), default="mae",
                        help="mae: encoder sees visible patches only; simmim: encoder sees mask tokens")  # fmt: skip
    parser.add_argument("--norm-pix-loss", action="store_true", help="predict per-patch normalised pixels")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=float, default=None, help="passes over the training split (default 20)")
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps")
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget; steps are calibrated to it")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default: per preset)")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--crop-scale", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="random-resized-crop area range (default 0.2 1.0; 0.6 1.0 for digits)")  # fmt: skip
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="random horizontal flips (default: on, off for digits)")  # fmt: skip
    parser.add_argument("--no-augment", action="store_true", help="no crop/flip augmentation")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable images (counted) instead of failing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--out", required=True, help="run directory to write (or continue with --resume)")
    parser.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    add_engine_args(parser)


# ------------------------------------------------------------------------------------------ run + data
def read_data_info(run_dir: str | Path) -> dict[str, Any]:
    """``RUN/data.json`` (``{}`` for a run trained without the CLI)."""
    return read_run_info(run_dir, DATA_FILE)


def load_run_model(run_dir: str | Path, device: str = "cpu"):
    """The trained :class:`~masklab.models.mae.MAE` of ``run_dir`` in eval mode (``ValueError`` if not an MAE run)."""
    from masklab.apps import run_kind
    from masklab.core.device import resolve_device
    from masklab.train.checkpoint import load_model

    kind = run_kind(run_dir)
    if kind != "mae":
        raise ValueError(f"{run_dir} is a {kind!r} run, not an MAE run")
    return load_model(run_dir, device=str(resolve_device(device)))


def load_split(spec: str | None, run_dir: str | Path, model, *, skip_bad: bool = False):
    """``(dataset, train_idx, test_idx)`` for ``spec`` (default: the run's data) at the model's size/channels.

    The run's own data gets the run's split (its test examples were never trained on); other data gets a
    fresh split with the default fraction and seed.
    """
    from masklab.data.images import load_images, split_indices

    info = read_data_info(run_dir)
    spec = spec or info.get("spec") or DEFAULT_DATA
    cfg = model.config
    dataset = load_images(
        spec, image_size=cfg.image_size, channels=cfg.channels, skip_bad=skip_bad, min_side=cfg.patch_size
    )
    same = spec == info.get("spec")
    fraction = info.get("test_fraction", TEST_FRACTION) if same else TEST_FRACTION
    seed = info.get("split_seed", SPLIT_SEED) if same else SPLIT_SEED
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, fraction, seed)
    return dataset, train_idx, test_idx


def encode_all(model, images_of, count: int, batch_size: int = 256):
    """Features ``(count, D)`` as float32 numpy: ``images_of(slice)`` yields CPU image batches."""
    import torch

    device = next(model.parameters()).device
    chunks = []
    with torch.inference_mode():
        for start in range(0, count, batch_size):
            chunks.append(model.features(images_of(slice(start, start + batch_size)).to(device)).float().cpu())
    return torch.cat(chunks).numpy()


# ------------------------------------------------------------------------------------------ pretrain
def _budget_steps(args, model, train, batch_size: int, lr: float) -> int:
    """Optimizer steps from --steps / --epochs / --minutes (minutes: timed on a throwaway copy)."""
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        return args.steps
    if args.minutes is None:
        epochs = 20.0 if args.epochs is None else args.epochs
        if epochs <= 0:
            raise ValueError(f"--epochs must be > 0, got {epochs}")
        return max(1, math.ceil(epochs * len(train) / batch_size))
    if args.minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {args.minutes}")
    from masklab.train import TrainConfig
    from masklab.train.budget import seconds_per_step

    probe_cfg = TrainConfig(steps=1, batch_size=batch_size, lr=lr, device=args.device, precision=args.precision)
    per_step = seconds_per_step(model, train, probe_cfg, trials=3)
    # 1.5x the calibrated count: TrainConfig.max_seconds stops the run at the budget and then drives the lr
    # schedule by time, so the budget is used in full even when the machine is faster than at calibration.
    return max(1, int(args.minutes * 60 * 1.5 / per_step))


def _augment_for(args, spec: str):
    from masklab.data.images import Augment

    if args.no_augment:
        return None
    digits = spec in _DIGIT_DATA
    scale = tuple(args.crop_scale) if args.crop_scale else ((0.6, 1.0) if digits else (0.2, 1.0))
    flip = (not digits) if args.flip is None else args.flip
    return Augment(crop_scale=scale, flip=flip)


def _resume_setup(out: Path) -> dict[str, Any]:
    """Settings of an existing run, so that a bare ``--out RUN --resume`` continues it exactly."""
    from masklab.data.images import Augment
    from masklab.models.mae import MAEConfig
    from masklab.train import TrainConfig
    from masklab.train.checkpoint import read_run_config

    saved = read_run_config(out)
    info = read_data_info(out)
    if not info:
        raise ValueError(f"cannot resume {out}: it has no {DATA_FILE} (not written by masklab pretrain mae)")
    augment = info.get("augment")
    model_config = MAEConfig.from_config(saved["model"])
    return {
        "spec": info["spec"], "skip_bad": info.get("skip_bad", False), "fraction": info["test_fraction"],
        "split_seed": info["split_seed"], "num_train": info.get("num_train"),
        "augment": None if augment is None else Augment(**{k: tuple(v) if isinstance(v, list) else v
                                                             for k, v in augment.items()}),
        "model_config": model_config, "train_config": TrainConfig.from_dict(saved["train"]),
        "image_size": model_config.image_size, "patch": model_config.patch_size, "channels": model_config.channels,
    }  # fmt: skip


def _fresh_setup(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from masklab.models.mae.presets import MAE_PRESETS
    from masklab.train.checkpoint import CHECKPOINT_NAME

    if (out / CHECKPOINT_NAME).exists():
        raise ValueError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if args.preset not in MAE_PRESETS:
        raise ValueError(f"unknown --preset {args.preset!r}; known: {', '.join(MAE_PRESETS)}")
    if not 0 <= args.mask_ratio < 1:
        raise ValueError(f"--mask-ratio must be in [0, 1) (1 would hide every patch), got {args.mask_ratio}")
    preset = MAE_PRESETS[args.preset]
    size = args.image_size
    if size is None and Path(args.data).is_dir():  # folders are resized to the preset size; arrays keep theirs
        size = preset["image_size"]
    return {
        "spec": args.data, "skip_bad": args.skip_bad, "fraction": TEST_FRACTION, "split_seed": SPLIT_SEED,
        "augment": _augment_for(args, args.data), "image_size": size,
        "patch": args.patch_size or preset["patch_size"], "channels": None,
    }  # fmt: skip


def pretrain(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from masklab.core.io import atomic_write_json
    from masklab.data.images import load_images, split_indices
    from masklab.models.mae import MAE
    from masklab.models.mae.presets import TRAIN_DEFAULTS, preset_config
    from masklab.train import TrainConfig

    out = Path(args.out)
    setup = _resume_setup(out) if args.resume else _fresh_setup(args, out)
    spec = setup["spec"]
    dataset = load_images(spec, image_size=setup["image_size"], channels=setup["channels"],
                          skip_bad=setup["skip_bad"], min_side=setup["patch"])  # fmt: skip
    train_idx, test_idx = split_indices(len(dataset), dataset.labels, setup["fraction"], setup["split_seed"])
    train = dataset.subset(train_idx).with_augment(setup["augment"])
    if args.resume:
        if len(train) != setup["num_train"]:
            raise ValueError(f"cannot resume {out}: {spec} now gives {len(train)} training images, the run "
                             f"had {setup['num_train']}")  # fmt: skip
        model_config, train_cfg = setup["model_config"], setup["train_config"]
        torch.manual_seed(train_cfg.seed)
        model = MAE(model_config)
    else:
        mean, std = train.pixel_stats()
        model_config = preset_config(
            args.preset, image_size=dataset.image_size, patch_size=setup["patch"], channels=dataset.channels,
            mask_ratio=args.mask_ratio, mask_kind=args.mask_kind, variant=args.variant,
            norm_pix_loss=args.norm_pix_loss, pixel_mean=mean, pixel_std=std,
        )  # fmt: skip
        torch.manual_seed(args.seed)  # the initial weights
        model = MAE(model_config)
        defaults = TRAIN_DEFAULTS[args.preset]
        batch_size = min(args.batch_size or defaults["batch_size"], len(train))
        lr = args.lr if args.lr is not None else defaults["lr"]
        steps = _budget_steps(args, model, train, batch_size, lr)
        train_cfg = TrainConfig(
            steps=steps, batch_size=batch_size, lr=lr, warmup_steps=int(defaults["warmup_fraction"] * steps),
            weight_decay=args.weight_decay, seed=args.seed, device=args.device,
            ckpt_every=args.ckpt_every, log_every=args.log_every,
            max_seconds=None if args.minutes is None else args.minutes * 60, **engine_fields(args, model),
        )  # fmt: skip
        augment = setup["augment"]
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / DATA_FILE, {
            "spec": spec, "image_size": list(dataset.image_size), "channels": dataset.channels,
            "test_fraction": setup["fraction"], "split_seed": setup["split_seed"], "skip_bad": setup["skip_bad"],
            "num_train": len(train), "num_test": len(test_idx),
            "augment": None if augment is None else dataclasses.asdict(augment),
        })  # fmt: skip
    print(f"pretraining MAE on {dataset.name}: {len(train)} train / {len(test_idx)} held-out images "
          f"{dataset.channels}x{dataset.image_size[0]}x{dataset.image_size[1]}, {train_cfg.steps} steps of "
          f"{train_cfg.batch_size}, {sum(p.numel() for p in model.parameters()):,} parameters -> {out}")  # fmt: skip
    result = fit_run(model, train, train_cfg, out, model_config=model_config.to_dict(), resume=args.resume)
    print(f"done: step {result.step}, loss {result.last_metrics.get('loss', float('nan')):.4f}; run saved in {out}")
    return 0


# ------------------------------------------------------------------------------------------ embed / probe
def embed(args: argparse.Namespace) -> int:
    import numpy as np

    from masklab.data.images import load_images

    model = load_run_model(args.run, args.device)
    cfg = model.config
    spec = args.data or read_data_info(args.run).get("spec") or DEFAULT_DATA
    dataset = load_images(spec, image_size=cfg.image_size, channels=cfg.channels, min_side=cfg.patch_size)
    features = encode_all(model, dataset.images, len(dataset), args.batch_size or 256)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, features)
    print(f"wrote {features.shape[0]} x {features.shape[1]} features ({cfg.pool} pool, no masking) to {out}")
    return 0


def _limit(train_idx, test_idx, max_examples: int | None, seed: int):
    import torch

    if max_examples is None:
        return train_idx, test_idx
    if max_examples < 2:
        raise ValueError(f"--max-examples must be >= 2, got {max_examples}")
    g = torch.Generator().manual_seed(seed)
    n_test = max(1, round(max_examples * len(test_idx) / (len(train_idx) + len(test_idx))))
    pick = lambda idx, n: idx[torch.randperm(len(idx), generator=g)[:n]].sort().values  # noqa: E731
    return pick(train_idx, max_examples - n_test), pick(test_idx, n_test)


def probe(args: argparse.Namespace) -> int:
    import torch

    from masklab.eval.probe import format_probe_table, probe_features
    from masklab.models.mae import MAE

    model = load_run_model(args.run, args.device)
    dataset, train_idx, test_idx = load_split(args.data, args.run, model)
    if dataset.labels is None:
        raise ValueError(f"{dataset.name} has no labels; a probe needs class subfolders or a label array")
    train_idx, test_idx = _limit(train_idx, test_idx, args.max_examples, args.seed)
    ty, vy = dataset.labels[train_idx].numpy(), dataset.labels[test_idx].numpy()
    torch.manual_seed(args.seed)
    random_model = MAE(model.config).to(next(model.parameters()).device).eval()
    rows = []
    for name, m in (("MAE encoder", model), ("random encoder", random_model)):
        tx = encode_all(m, lambda s: dataset.images(train_idx[s]), len(train_idx), args.batch_size or 256)
        vx = encode_all(m, lambda s: dataset.images(test_idx[s]), len(test_idx), args.batch_size or 256)
        rows.append(probe_features(name, tx, ty, vx, vy, seed=args.seed))
    raw = dataset.images(train_idx).flatten(1).numpy(), dataset.images(test_idx).flatten(1).numpy()
    rows.append(probe_features("raw pixels", raw[0], ty, raw[1], vy, seed=args.seed))
    print(f"{dataset.name}: probe trained on {len(train_idx)} images, scored on {len(test_idx)} held-out images")
    print(format_probe_table(rows))
    return 0


def finetune(args: argparse.Namespace) -> int:
    """Fine-tune the pretrained encoder with a linear head on the run's training split; report test accuracy."""
    import dataclasses

    import torch

    from masklab.core.io import atomic_write_json
    from masklab.data.images import Augment
    from masklab.models.mae import MAE
    from masklab.train import TrainConfig

    if args.task != "classify":
        raise ValueError(f"--task {args.task!r} is not available for MAE runs; use --task classify")
    pretrained = load_run_model(args.run, "cpu")
    dataset, train_idx, test_idx = load_split(args.data, args.run, pretrained)
    if dataset.labels is None:
        raise ValueError(f"{dataset.name} has no labels; fine-tuning needs class subfolders or a label array")
    transform = None
    if args.augment:  # e.g. mask:0.25 -> PatchDrop of a quarter of the model's patches, cutout:0.2, erase:0.5
        from masklab.data.augment import parse_augment

        transform = parse_augment(args.augment, "image", patch_size=pretrained.config.patch_size)
    config = dataclasses.replace(pretrained.config, objective="classify", num_classes=dataset.num_classes,
                                 mask_ratio=0.0, mask_kind="random", masker=None)  # fmt: skip
    torch.manual_seed(args.seed)
    model = MAE(config)
    encoder_state = {k: v for k, v in pretrained.state_dict().items() if k in model.state_dict()}
    missing = model.load_state_dict(encoder_state, strict=False).missing_keys
    if sorted(missing) != ["head.bias", "head.weight"]:
        raise ValueError(f"{args.run}: pretrained weights do not cover the encoder (missing {missing})")
    spec = args.data or read_data_info(args.run).get("spec") or DEFAULT_DATA
    crop = Augment(crop_scale=(0.6, 1.0), flip=False) if spec in _DIGIT_DATA else Augment(crop_scale=(0.3, 1.0))
    train = dataset.subset(train_idx).with_augment(crop)
    if transform is not None:
        from masklab.data.augment import AugmentedData

        train = AugmentedData(train, transform)
    batch_size = min(args.batch_size or 128, len(train))
    if args.steps is not None:
        steps = args.steps
    else:
        steps = max(1, math.ceil((args.epochs if args.epochs is not None else 10) * len(train) / batch_size))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=args.lr or 5e-4, warmup_steps=steps // 10,
                      seed=args.seed, device=args.device, ckpt_every=max(steps, 1))  # fmt: skip
    out = Path(args.out) if args.out else Path(args.run) / "finetune"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / DATA_FILE, {**read_data_info(args.run), "spec": spec, "finetuned_from": str(args.run),
                                        "finetune_augment": args.augment})  # fmt: skip
    print(f"fine-tuning {args.run} on {len(train)} {dataset.name} images ({dataset.num_classes} classes), "
          f"{steps} steps of {batch_size} -> {out}")  # fmt: skip
    fit_run(model, train, cfg, out, model_config=config.to_dict())
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(test_idx), 256):
            idx = test_idx[start : start + 256]
            device = next(model.parameters()).device
            correct += int((model.logits(dataset.images(idx).to(device)).argmax(-1).cpu() == dataset.labels[idx]).sum())
    accuracy = correct / len(test_idx)
    atomic_write_json(out / "finetune.json", {"test_accuracy": accuracy, "num_test": len(test_idx), "steps": steps})
    print(f"test accuracy {100 * accuracy:.2f}% on {len(test_idx)} held-out images")
    return 0
