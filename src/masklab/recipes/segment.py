"""Segmentation on an MAE run: train a head (``RUN/segment``), score it, predict a subject mask for an image.

Typical use (``masklab segment train RUN`` and ``masklab segment RUN IMAGE -o mask.png`` call these)::

    result = train_segmenter("runs/mae", "builtin:synthetic-subjects", preset="probe", epochs=20)
    seg = load_segmenter("runs/mae")
    classes = predict_mask(seg, image)  # image (C, H, W) float in [0, 1], any size -> (H, W) long

The head's test images are kept out of the MAE's pretraining: the split is ``split_indices(n, None, 0.2, 0)``
(the one MAE pretraining uses for the same images), and when the MAE was pretrained on another folder
(:func:`encoder_seen`), held-out images whose file content is among the MAE's training images are swapped
for unseen ones. Where the MAE's training files cannot be told (an array file, a Hugging Face folder,
WebDataset shards, a folder changed since), a warning says the test images may have been seen by the encoder.

Shape legend: ``N`` images, ``C`` channels, ``H``/``W`` image size, ``K`` classes (0 = background).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from masklab.core.contract import saved_config
from masklab.core.io import atomic_write_json
from masklab.data.pixel_masks import SegmentationDataset, SegmentBatch, load_segmentation
from masklab.eval.segmentation import segmentation_scores
from masklab.models.mae import MAE
from masklab.models.segment import PRESETS, SegmentConfig, Segmenter
from masklab.recipes.segment_split import SPLIT_SEED, TEST_FRACTION, unseen_split, validation_split
from masklab.recipes.segment_split import split as split  # re-exported (serve, callers)
from masklab.train import TrainConfig, fit, load_model
from masklab.train.checkpoint import CHECKPOINT_NAME

DEFAULT_DATA = "builtin:synthetic-subjects"
SEGMENT_DIR = "segment"  # a segmenter trained on RUN lives in RUN/segment
INFO_FILE = "segment.json"


@dataclass(frozen=True)
class SegmentTrainResult:
    """Where :func:`train_segmenter` wrote the head and how it scored on the held-out split."""

    out_dir: Path
    scores: dict[str, float]  # iou, dice, boundary_f on the held-out images
    num_train: int
    num_test: int
    steps: int


def load_mae(run: str | Path, device: str = "cpu") -> MAE:
    """The pretrained MAE of ``run`` in eval mode (``ValueError`` for another kind of run or a classifier)."""
    model = load_model(run, device=device)
    if not isinstance(model, MAE) or model.config.objective != "reconstruct":
        raise ValueError(f"{run} is not a pretrained MAE run (masklab pretrain mae ...)")
    return model


def head_dir(run: str | Path) -> Path:
    """The folder of the segmentation head of ``run``: ``run`` itself when it is a segmentation run, else
    ``run/segment`` (``FileNotFoundError`` / ``ValueError`` saying what is missing)."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run} is not a masklab run: {run / 'config.json'} does not exist")
    kind = _kind(run)
    if kind not in ("mae", "segment"):
        raise ValueError(f"{run} is a {kind!r} run; segmentation needs an MAE run (masklab pretrain mae) with a "
                         "head trained on it (masklab segment train RUN), or that head's folder")  # fmt: skip
    path = run if kind == "segment" else run / SEGMENT_DIR
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{run} has no segmentation head; train one first: masklab segment train {run}")
    return path


def unfinished_head(run: str | Path) -> str | None:
    """A sentence when the head :func:`load_segmenter` would load stopped before its planned steps (a Ctrl-C
    stop keeps a usable but undertrained head), else None (also when there is no head to judge)."""
    import json

    from masklab.train.interrupt import held_step

    try:
        path = head_dir(run)
        planned = int(json.loads((path / "config.json").read_text())["train"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    held = held_step(path / CHECKPOINT_NAME)
    if held is None or held >= planned:
        return None
    return f"the head in {path} stopped at step {held} of {planned} (interrupted); its masks may be poor"


def load_segmenter(run: str | Path, device: str = "cpu") -> Segmenter:
    """The segmenter of ``run``: the head in :func:`head_dir`."""
    path = head_dir(run)
    model = load_model(path, device=device)
    if not isinstance(model, Segmenter):
        raise ValueError(f"{path} is not a segmentation run")
    return model


def _kind(run: Path) -> str:
    import json

    try:
        return str(json.loads((run / "config.json").read_text())["kind"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{run / 'config.json'} is not a valid masklab run config") from err


class CachedTokens:
    """Training data for a frozen encoder: each image's tokens (and its mirror image's) computed once.

    Batches match :meth:`SegmentationDataset.get_batch` (same flip draws) with ``tokens (B, L, D)`` added.
    """

    def __init__(self, seg: Segmenter, data: SegmentationDataset, batch_size: int = 256) -> None:
        if not seg.config.freeze_encoder:
            raise ValueError("only a frozen encoder's tokens can be cached")
        self.data = data
        images = data.images()
        with torch.no_grad():
            self.tokens = torch.cat([seg.encode(images[i : i + batch_size]) for i in range(0, len(data), batch_size)])
            self.flipped = None
            if data.flip:
                mirrored = images.flip(-1)
                self.flipped = torch.cat([seg.encode(mirrored[i : i + batch_size])
                                          for i in range(0, len(data), batch_size)])  # fmt: skip

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices: Tensor, generator: torch.Generator) -> SegmentBatch:
        images, targets = self.data.images(indices), self.data.targets[indices].long()
        tokens = self.tokens[indices]
        if self.flipped is not None:
            flip = torch.rand(len(indices), generator=generator) < 0.5  # (B,) as SegmentationDataset draws it
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            targets = torch.where(flip[:, None, None], targets.flip(-1), targets)
            tokens = torch.where(flip[:, None, None], self.flipped[indices], tokens)
        return SegmentBatch(images, targets, tokens)


@torch.no_grad()
def predict_classes(seg: Segmenter, images: Tensor, batch_size: int = 256) -> Tensor:
    """Class per pixel ``long (N, H, W)`` for ``images (N, C, H, W)`` at the encoder's size."""
    was_training = seg.training
    seg.eval()
    device = next(seg.parameters()).device
    out = [seg.predict(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)]
    seg.train(was_training)
    return torch.cat(out)


def evaluate(seg: Segmenter, dataset: SegmentationDataset, indices: Tensor) -> dict[str, float]:
    """IoU / Dice / boundary F of subject (non-background) pixels on ``dataset[indices]``."""
    pred = predict_classes(seg, dataset.images(indices)).numpy() > 0
    target = dataset.targets[indices].numpy() > 0
    return segmentation_scores(pred, target)


def train_segmenter(
    run: str | Path,
    data: str = DEFAULT_DATA,
    *,
    out: str | Path | None = None,
    preset: str = "probe",
    epochs: float = 20.0,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float | None = None,
    seed: int = 0,
    device: str = "cpu",
    random_init: bool = False,
    flip: bool = True,
    validation: float | None = None,
    overrides: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    progress: bool | None = None,
) -> SegmentTrainResult:
    """Train a segmentation head on the MAE of ``run`` and score it on the held-out split.

    ``preset``: ``probe`` (frozen encoder, only the head learns) or ``finetune`` (encoder trained with the
    head, layer-wise learning-rate decay ``SegmentConfig.layer_decay``); ``lr`` (default 2e-3 for a probe,
    1e-3 to fine-tune) is the head's peak rate. ``random_init`` keeps the encoder's
    architecture but not its weights (the baseline that shows what pretraining adds). ``validation``: hold
    out that fraction of the *training* split (:func:`validation_split`), train on the rest and score on it
    instead of the test split (for choosing settings). ``overrides``: :class:`SegmentConfig` fields over the
    preset. Writes ``out`` (default ``run/segment``) as a run directory plus ``segment.json`` with the scores.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown segment preset {preset!r}; known: {', '.join(PRESETS)}")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    out_dir = Path(out) if out is not None else Path(run) / SEGMENT_DIR
    from masklab.recipes.common import locked_run
    from masklab.train.run import Run

    with locked_run(Run(out_dir)):  # one writer: a second `segment train` into the same folder is refused
        if (out_dir / CHECKPOINT_NAME).exists():  # before any work; `fit` would say "resume it", which this cannot
            raise ValueError(f"{out_dir} already holds a trained head; pick another --out, or delete it to retrain")
        mae = load_mae(run)
        cfg = mae.config
        dataset = load_segmentation(data, image_size=cfg.image_size, channels=cfg.channels, min_side=cfg.patch_size)
        train_idx, test_idx, swapped = unseen_split(run, dataset)
        if swapped:
            few = "the " if len(test_idx) < len(split(dataset)[1]) else ""
            print(f"masklab: note: {swapped} of the held-out images were in the MAE's pretraining split; the "
                  f"head is tested on {few}{len(test_idx)} images the encoder never saw instead",
                  file=sys.stderr)  # fmt: skip
        if validation is not None:
            train_idx, test_idx = validation_split(train_idx, validation)
        torch.manual_seed(seed)
        config = SegmentConfig.from_preset(preset, encoder=cfg.to_dict(), num_classes=dataset.num_classes,
                                           **(overrides or {}))  # fmt: skip
        seg = Segmenter(config)
        if not random_init:
            seg.load_encoder(mae)
        subset = dataset.subset(train_idx).with_flip(flip)
        train: SegmentationDataset | CachedTokens = subset
        if config.freeze_encoder:  # the encoder never changes: encode every training image once, not every step
            train = CachedTokens(seg, subset)
        batch_size = min(batch_size, len(train))
        if steps is None:
            if not epochs > 0:
                raise ValueError(f"epochs must be > 0, got {epochs}")
            steps = max(1, math.ceil(epochs * len(train) / batch_size))
        if lr is None:
            lr = 2e-3 if config.freeze_encoder else 1e-3  # chosen on the validation split (docs/benchmarks.md)
        train_cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=steps // 20, weight_decay=0.01,
                                seed=seed, device=device, ckpt_every=steps, log_every=max(1, steps // 10),
                                max_seconds=max_seconds)  # fmt: skip
        result = fit(seg, train, train_cfg, out_dir, model_config=saved_config(seg), progress=progress, resumable=False)
        seg.eval()
        scores = evaluate(seg, dataset, test_idx)
        info: dict[str, Any] = {
            "data": data, "mae_run": str(run), "preset": preset, "random_init": random_init,
            "test_fraction": TEST_FRACTION, "split_seed": SPLIT_SEED, "validation": validation,
            "num_train": len(train_idx), "num_test": len(test_idx), "steps": result.step,
            "test_swapped_for_unseen": swapped, **({"test_indices": test_idx.tolist()} if swapped else {}),
            ("validation_scores" if validation is not None else "test_scores"): scores,
        }  # fmt: skip
        atomic_write_json(out_dir / INFO_FILE, info)
        return SegmentTrainResult(out_dir, scores, len(train_idx), len(test_idx), result.step)


def predict_mask(seg: Segmenter, image: Tensor, box: tuple[int, int, int, int] | None = None) -> Tensor:
    """Class per pixel ``long (H, W)`` (0 = background) for one image ``(C, H, W)`` in [0, 1] of any size.

    The image is seen as training sees it (:func:`masklab.data.pixel_masks.load_mask_folder`): resized, keeping
    its aspect ratio, to cover the encoder's size; where it is longer than that, overlapping windows of the
    encoder's size cover it and their logits are averaged. The logits are resized back (bilinear) before the
    argmax. ``box = (x0, y0, x1, y1)`` in the image's pixels (exclusive end) crops the mask to the box: pixels
    outside it are background, and a subject crossing its edge is cut there (a hard crop, predictable even
    when the head's subject bleeds into the background; it does not pick whole connected subjects).
    """
    from masklab.data.pixel_masks import cover_size

    cfg = seg.mae.config
    if image.ndim != 3 or image.shape[0] != cfg.channels:
        raise ValueError(f"expected one image ({cfg.channels}, H, W), got shape {tuple(image.shape)}")
    H, W = image.shape[1:]
    if min(H, W) < cfg.patch_size:
        raise ValueError(f"the image is {H}x{W} pixels, smaller than one {cfg.patch_size}x{cfg.patch_size} patch")
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H):
            raise ValueError(f"box {box} must satisfy 0 <= x0 < x1 <= {W} and 0 <= y0 < y1 <= {H} (x0,y0,x1,y1)")
    h, w = cfg.image_size
    rh, rw, _, _ = cover_size(H, W, (h, w))
    big = F.interpolate(image[None].float(), size=(rh, rw), mode="bilinear", antialias=True,
                        align_corners=False).clamp(0, 1)  # fmt: skip
    tops = sorted({round(t) for t in torch.linspace(0, rh - h, math.ceil(rh / h)).tolist()})
    lefts = sorted({round(t) for t in torch.linspace(0, rw - w, math.ceil(rw / w)).tolist()})
    windows = [(t, left) for t in tops for left in lefts]
    crops = torch.cat([big[..., t : t + h, left : left + w] for t, left in windows])  # (n, C, h, w)
    seg.eval()
    with torch.no_grad():
        out = seg(crops.to(next(seg.parameters()).device)).float().cpu()  # (n, K, h, w)
    total, count = torch.zeros(1, out.shape[1], rh, rw), torch.zeros(1, 1, rh, rw)
    for (t, left), logits in zip(windows, out, strict=True):
        total[0, :, t : t + h, left : left + w] += logits
        count[0, :, t : t + h, left : left + w] += 1
    logits = F.interpolate(total / count, size=(H, W), mode="bilinear", align_corners=False)
    pred = logits.argmax(1)[0]  # (H, W)
    if box is not None:
        keep = torch.zeros_like(pred, dtype=torch.bool)
        keep[box[1] : box[3], box[0] : box[2]] = True
        pred = torch.where(keep, pred, torch.zeros_like(pred))
    return pred


def overlay(image: Tensor, classes: Tensor) -> Tensor:
    """``image (C, H, W)`` in [0, 1] with the subject pixels of ``classes (H, W)`` tinted red ``(3, H, W)``."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    return torch.where(classes[None] > 0, 0.5 * rgb + 0.5 * red, rgb)


def save_side_by_side(path: str | Path, image: Tensor, classes: Tensor, truth: Tensor | None = None) -> Path:
    """PNG of [image | predicted mask | overlay (| true mask)] for ``image (C, H, W)``, ``classes (H, W)``."""
    from masklab.viz.grids import save_grid

    def as_mask(c: Tensor) -> Tensor:
        return (c > 0).float()[None].expand(3, -1, -1)

    row = [image.expand(3, -1, -1) if image.shape[0] == 1 else image, as_mask(classes), overlay(image, classes)]
    titles = ["image", "predicted mask", "overlay"]
    if truth is not None:
        row.append(as_mask(truth))
        titles.append("true mask")
    return save_grid(path, [row], titles=titles)


def read_image(path: str | Path, channels: int) -> Tensor:
    """One image file as float ``(C, H, W)`` in [0, 1] with ``channels`` channels (``ValueError`` naming it)."""
    from masklab.data.image_files import image_pixels, open_image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    a = image_pixels(open_image(path), channels).transpose(2, 0, 1)  # (C, H, W) uint8, 16-bit gray rescaled
    return torch.from_numpy(a.copy()).float() / 255.0
