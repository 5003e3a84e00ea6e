"""Segmentation heads to serve: the head of an MAE run (``RUN/segment``) or a head folder given directly, with
the MAE that can fill a removed subject and a few held-out images of the data the head was scored on.

A head is served whatever shape it is in; what it cannot offer here is said in notes (printed at start-up and
shown on the page): a head that stopped before its planned steps (:func:`~masklab.recipes.segment.unfinished_head`),
no MAE to remove a subject with, no built-in examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXAMPLES = 12  # held-out images offered by a segmentation panel
PREFIX = "segmentation: "  # notes about the head start with this (the page shows them in its panel)


@dataclass
class SegmentHead:
    """``model``: the :class:`~masklab.models.segment.Segmenter`; ``path``: its folder; ``editor``: the MAE that
    fills a removed subject (None: remove-subject is not offered, ``notes`` say why); ``examples``
    ``(N, C, H, W)`` held-out images of the head's data (None when not here); ``info``: its ``segment.json``."""

    model: Any
    path: Path
    editor: Any = None
    examples: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def head_of_mae_run(path: Path, mae, device: str) -> tuple[SegmentHead | None, list[str]]:
    """The head in ``path/segment`` of an MAE run (None when it has none; a head that cannot be loaded is a
    note, and the MAE panel is served without it)."""
    from masklab.recipes.segment import SEGMENT_DIR

    if not (path / SEGMENT_DIR / "config.json").is_file():
        return None, []
    try:
        head = load_head(path, mae, device)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        return None, [f"{PREFIX}the head in {path / SEGMENT_DIR} cannot be loaded ({err}); no segmentation panel"]
    return head, head.notes


def load_head(path: Path, mae, device: str) -> SegmentHead:
    """The head :func:`~masklab.recipes.segment.load_segmenter` finds for ``path`` (an MAE run or a head
    folder); ``mae``: the run's MAE, or None to look for the one the head was trained on."""
    from masklab.recipes.segment import INFO_FILE, head_dir, load_segmenter, unfinished_head
    from masklab.train.run import Run

    seg = load_segmenter(path, device)
    folder = head_dir(path)
    info = Run(folder).read_sidecar(INFO_FILE)
    notes = []
    unfinished = unfinished_head(path)
    if unfinished:
        notes.append(PREFIX + unfinished)
    why = None
    if mae is None:
        mae, why = _source_mae(folder, seg, info, device)
    elif mae.config.to_dict() != seg.mae.config.to_dict():
        mae, why = None, f"the head in {folder} was trained on another MAE than {path} (their configs differ)"
    if mae is not None and mae.config.norm_pix_loss:
        mae, why = None, "the MAE was trained with norm_pix_loss: it cannot predict a hidden patch's own colour"
    if why:
        notes.append(f"{PREFIX}remove-subject is not offered: {why}")
    examples, why = _examples(seg, info)
    if why:
        notes.append(f"{PREFIX}no built-in examples: {why}")
    return SegmentHead(seg, folder, mae, examples, info, notes)


def _source_mae(folder: Path, seg, info: dict[str, Any], device: str) -> tuple[Any, str | None]:
    """The MAE run a head folder was trained on (its parent, or ``mae_run`` of its ``segment.json``) when it is
    here and has the head's encoder config; else None and why not."""
    from masklab.recipes.segment import load_mae

    named = info.get("mae_run")
    for candidate in dict.fromkeys([folder.parent, *([Path(named)] if named else [])]):
        if not (candidate / "config.json").is_file() or candidate.resolve() == folder.resolve():
            continue
        try:
            mae = load_mae(candidate, device)
        except (OSError, ValueError, KeyError, RuntimeError):
            continue
        if mae.config.to_dict() == seg.mae.config.to_dict():
            return mae, None
    where = f"its segment.json names {named}" if named else f"{folder} has no segment.json naming it"
    return None, f"it needs the MAE run the head was trained on, which is not here ({where}); serve that run instead"


def _examples(seg, info: dict[str, Any]) -> tuple[Any, str | None]:
    """Up to :data:`EXAMPLES` images of the head's test split (never trained on), or None and why not."""
    import torch

    from masklab.data.pixel_masks import load_segmentation
    from masklab.recipes.segment import split

    spec = info.get("data")
    if not spec:
        return None, "the head's segment.json does not name its data"
    cfg = seg.mae.config
    try:
        dataset = load_segmentation(spec, image_size=cfg.image_size, channels=cfg.channels, min_side=cfg.patch_size)
    except (OSError, ValueError, ImportError) as err:
        return None, f"the head's data cannot be loaded here ({err})"
    _, test_idx = split(dataset)
    if "test_indices" in info:  # training swapped test images the MAE had seen for unseen ones
        test_idx = torch.as_tensor(info["test_indices"], dtype=torch.long)
    pick = torch.randperm(len(test_idx), generator=torch.Generator().manual_seed(0))[:EXAMPLES]
    return dataset.images(test_idx[pick.sort().values]), None
