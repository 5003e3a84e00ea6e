"""What an MAE run is used for: features (``embed_mae``), frozen-feature probes (``probe_mae``) and
fine-tuning a classifier (``finetune_mae``). Features are ``(N, D)`` float32 of the unmasked encoder."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from masklab.eval.probe import ProbeResult, probe_features
from masklab.recipes.embedding import Embedding, note_skipped
from masklab.recipes.mae import (
    DATA_FILE,
    DEFAULT_DATA,
    DIGIT_DATA,
    encode_all,
    load_mae_run,
    load_split,
    read_data_info,
    recorded_spec,
    run_data,
)
from masklab.recipes.progress import Progress, batches, say, silent
from masklab.train.run import Run


def embed_mae(run: str | Path, *, data: str | None = None, batch_size: int | None = None, device: str = "auto",
              skip_bad: bool = False, progress: Progress | None = None) -> Embedding:  # fmt: skip
    """Features ``(N, D)`` float32 of every image of ``data`` (default: the run's), no masking, with each
    image's source (file path, or ``data[i]``) and label. ``skip_bad``: leave unreadable / too-small files out."""
    from masklab.data.images import load_images

    model = load_mae_run(run, device)
    cfg = model.config
    spec, _ = run_data(data, read_data_info(run).get("spec"), Path(run) / DATA_FILE, DEFAULT_DATA)
    say(progress, f"reading {spec}")
    column = None if data else read_data_info(run).get("column")
    dataset = load_images(spec, image_size=cfg.image_size, channels=cfg.channels, skip_bad=skip_bad,
                          min_side=cfg.patch_size, column=column)  # fmt: skip
    note_skipped(getattr(dataset, "skipped", ()), "image")
    features = encode_all(model, dataset.images, len(dataset), batch_size or 256, progress,
                          f"encoding {len(dataset)} images")  # fmt: skip
    sources = dataset.sources or tuple(f"{spec}[{i}]" for i in range(len(dataset)))
    return Embedding.of(features, sources, None if dataset.labels is None else dataset.labels.tolist(),
                        dataset.class_names)  # fmt: skip


def check_out_not_in_data(out: Path, data: str) -> None:
    """Refuse a fine-tune ``out`` that is, or lies inside, ``data`` (its checkpoint and pictures would become data)."""
    if data.startswith("builtin:"):
        return
    source, target = Path(data).resolve(), out.resolve()
    if target == source or source in target.parents:
        raise ValueError(f"--out {out} is inside --data {data}: the fine-tune's files would be read as data; "
                         "pick an --out outside it")  # fmt: skip


def limit_examples(train_idx, test_idx, max_examples: int | None, seed: int):
    """A seeded random ``max_examples`` (>= 2) of train and test together, each keeping its share (test >= 1)."""
    if max_examples is None:
        return train_idx, test_idx
    if max_examples < 2:
        raise ValueError(f"--max-examples must be >= 2, got {max_examples}")
    g = torch.Generator().manual_seed(seed)
    n_test = max(1, round(max_examples * len(test_idx) / (len(train_idx) + len(test_idx))))
    pick = lambda idx, n: idx[torch.randperm(len(idx), generator=g)[:n]].sort().values  # noqa: E731
    return pick(train_idx, max_examples - n_test), pick(test_idx, n_test)


def probe_mae(run: str | Path, *, data: str | None = None, max_examples: int | None = None, seed: int = 0,
              batch_size: int | None = None, device: str = "auto", skip_bad: bool = False,
              progress: Progress | None = None) -> list[ProbeResult]:  # fmt: skip
    """Linear-probe and k-NN accuracy of the frozen encoder's features on the run's held-out split, next to a
    random encoder of the same shape and raw pixels."""
    from masklab.models.mae import MAE

    model = load_mae_run(run, device)
    say(progress, f"reading {data or read_data_info(run).get('spec') or DEFAULT_DATA}")
    dataset, train_idx, test_idx = load_split(data, run, model, skip_bad=skip_bad)
    note_skipped(dataset.skipped, "image")
    if dataset.labels is None:
        raise ValueError(f"{dataset.name} has no labels; a probe needs class subfolders or a label array")
    train_idx, test_idx = limit_examples(train_idx, test_idx, max_examples, seed)
    ty, vy = dataset.labels[train_idx].numpy(), dataset.labels[test_idx].numpy()
    torch.manual_seed(seed)
    random_model = MAE(model.config).to(next(model.parameters()).device).eval()
    rows = []
    for name, m in (("MAE encoder", model), ("random encoder", random_model)):
        tx = encode_all(m, lambda s: dataset.images(train_idx[s]), len(train_idx), batch_size or 256, progress,
                        f"{name}: encoding {len(train_idx)} training images")  # fmt: skip
        vx = encode_all(m, lambda s: dataset.images(test_idx[s]), len(test_idx), batch_size or 256, progress,
                        f"{name}: encoding {len(test_idx)} held-out images")  # fmt: skip
        say(progress, f"{name}: fitting the linear probe and k-NN")
        rows.append(probe_features(name, tx, ty, vx, vy, seed=seed))
    say(progress, "raw pixels: fitting the linear probe and k-NN")
    raw = dataset.images(train_idx).flatten(1).numpy(), dataset.images(test_idx).flatten(1).numpy()
    rows.append(probe_features("raw pixels", raw[0], ty, raw[1], vy, seed=seed))
    print(f"{dataset.name}: probe trained on {len(train_idx)} images, scored on {len(test_idx)} held-out images")
    return rows


def finetune_mae(
    run: str | Path,
    *,
    data: str | None = None,
    task: str = "classify",
    steps: int | None = None,
    epochs: float | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    augment: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fine-tune the pretrained encoder with a linear head on the run's training split (10 epochs by default);
    ``augment`` masks the training inputs (``mask:F``, ``cutout:F``, ``erase:P``). Writes ``out`` (default
    ``RUN/finetune``, the layout of :mod:`masklab.recipes.finetune_outputs`) and returns its ``metrics.json``
    record (test accuracy, confusion matrix)."""
    from masklab.core.contract import saved_config
    from masklab.data.images import Augment
    from masklab.models.mae import MAE
    from masklab.recipes.common import fit_run
    from masklab.recipes.finetune_outputs import check_restart, default_out, write_finetune_outputs
    from masklab.train import TrainConfig

    if task != "classify":
        raise ValueError(f"--task {task!r} is not available for MAE runs; use --task classify")
    pretrained = load_mae_run(run, "cpu")
    if pretrained.config.objective == "classify":
        raise ValueError(f"{run} is a fine-tuned classifier; finetune needs the pretrained MAE run it came from "
                         f"({read_data_info(run).get('finetuned_from') or 'its parent folder'})")  # fmt: skip
    target = Run(default_out(run, out))
    say(progress, f"reading {data or read_data_info(run).get('spec') or DEFAULT_DATA}")
    spec, _ = run_data(data, read_data_info(run).get("spec"), Path(run) / DATA_FILE, DEFAULT_DATA)
    check_out_not_in_data(target.path, spec)
    dataset, train_idx, test_idx = load_split(spec, run, pretrained, skip_bad=skip_bad)
    note_skipped(dataset.skipped, "image")
    if dataset.labels is None:
        raise ValueError(f"{dataset.name} has no labels; fine-tuning needs class subfolders or a label array")
    transform = None
    if augment:  # e.g. mask:0.25 -> PatchDrop of a quarter of the model's patches, cutout:0.2, erase:0.5
        from masklab.data.augment import parse_augment

        transform = parse_augment(augment, "image", patch_size=pretrained.config.patch_size)
    config = dataclasses.replace(pretrained.config, objective="classify", num_classes=dataset.num_classes,
                                 mask_ratio=0.0, mask_kind="random", masker=None)  # fmt: skip
    torch.manual_seed(seed)
    model = MAE(config)
    encoder_state = {k: v for k, v in pretrained.state_dict().items() if k in model.state_dict()}
    missing = model.load_state_dict(encoder_state, strict=False).missing_keys
    if sorted(missing) != ["head.bias", "head.weight"]:
        raise ValueError(f"{run}: pretrained weights do not cover the encoder (missing {missing})")
    crop = Augment(crop_scale=(0.6, 1.0), flip=False) if spec in DIGIT_DATA else Augment(crop_scale=(0.3, 1.0))
    train = dataset.subset(train_idx).with_augment(crop)
    if transform is not None:
        from masklab.data.augment import AugmentedData

        train = AugmentedData(train, transform)
    batch_size = min(batch_size or 128, len(train))
    if steps is None:
        steps = max(1, math.ceil((epochs if epochs is not None else 10) * len(train) / batch_size))
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr or 5e-4, warmup_steps=steps // 10,
                      seed=seed, device=device, ckpt_every=max(steps, 1))  # fmt: skip
    say(progress, f"fine-tuning {run} on {len(train)} {dataset.name} images ({dataset.num_classes} classes), "
        f"{steps} steps of {batch_size} -> {target.path}")  # fmt: skip
    with target.lock():
        check_restart(target, run)
        target.write_sidecar(DATA_FILE, {**read_data_info(run), "spec": recorded_spec(spec), "finetuned_from": str(run),
                                         "finetune_augment": augment, "skip_bad": skip_bad})  # fmt: skip
        fit_run(target, model, train, cfg, model_config=saved_config(model), quiet=progress is silent,
                resumable=False)  # finetune has no --resume  # fmt: skip
        model.eval()
        preds = []
        with torch.inference_mode():
            dev = next(model.parameters()).device
            for part in batches(len(test_idx), 256, progress, f"testing on {len(test_idx)} held-out images"):
                idx = test_idx[part]
                preds.append(model.logits(dataset.images(idx).to(dev)).argmax(-1).cpu())
        names = dataset.class_names or tuple(str(i) for i in range(dataset.num_classes))
        record = write_finetune_outputs(
            target, model, y_true=dataset.labels[test_idx], y_pred=torch.cat(preds), names=names, title=spec,
            extra={"data": spec, "train_size": len(train), "steps": steps, "augment": augment},
        )  # fmt: skip
    return record
