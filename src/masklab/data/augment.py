"""Masking augmentation applied to a dataset: :class:`AugmentedData` and the ``--augment`` grammar.

The transforms themselves (pure tensor functions on a batch) are :mod:`masklab.masks.augment`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from masklab.masks.augment import (
    MODALITIES,
    CellMasking,
    Compose,
    Cutout,
    MaskSubstitution,
    Modality,
    PatchDrop,
    RandomErasing,
    TokenDropout,
    Transform,
)


class AugmentedData:
    """Training data whose batches pass through ``transform`` with ``fit``'s generator (``masklab.train.TrainData``).

    ``AugmentedData(train, parse_augment("mask:0.25", "image"))`` is what ``finetune --augment`` plugs into ``fit``.
    """

    def __init__(self, data: Any, transform: Transform | None) -> None:
        self.data = data
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices: Tensor, generator: torch.Generator) -> Any:
        batch = self.data.get_batch(indices, generator)
        return batch if self.transform is None else self.transform(batch, generator)


_NAMES: dict[str, dict[str, str]] = {
    "image": {"mask": "patchdrop", "patchdrop": "patchdrop", "cutout": "cutout", "erase": "erase"},
    "text": {"mask": "substitute", "substitute": "substitute", "tokendrop": "tokendrop", "delete": "tokendrop"},
    "table": {"mask": "cells", "cells": "cells"},
}


def build_transform(name: str, fraction: float, modality: str, options: dict[str, Any]) -> Transform:
    if name == "patchdrop":
        return PatchDrop(fraction, patch=options.get("patch_size", 4))
    if name == "cutout":
        return Cutout(fraction)
    if name == "erase":  # the fraction is the erasing probability; areas follow Zhong et al.'s defaults
        return RandomErasing(p=fraction)
    if name == "cells":
        return CellMasking(fraction)
    specials = tuple(options.get("special_ids", ()))
    if name == "tokendrop":
        return TokenDropout(fraction, pad_id=options.get("pad_id", 0), special_ids=specials)
    if options.get("mask_id") is None:
        raise ValueError("text masking augmentation needs the tokenizer's mask_id")
    return MaskSubstitution(fraction, mask_id=options["mask_id"], special_ids=specials)


def parse_augment(spec: str, modality: Modality, **options: Any) -> Transform:
    """``--augment`` value -> transform, e.g. ``mask:0.25`` or ``cutout:0.2,mask:0.1`` (applied in order).

    ``mask:F`` is the modality's masking: images -> :class:`PatchDrop` (``patch_size`` option, default 4),
    text -> :class:`MaskSubstitution` (``mask_id``, ``special_ids`` options), tables -> :class:`CellMasking`.
    Other names: images ``patchdrop``, ``cutout``, ``erase`` (F = probability); text ``substitute``,
    ``tokendrop``/``delete`` (``pad_id`` option); tables ``cells``.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"--augment needs a value like mask:0.25, got {spec!r}")
    known = _NAMES[modality]
    transforms = []
    for item in spec.split(","):
        name, sep, value = item.strip().partition(":")
        if name not in known or not sep:
            raise ValueError(f"--augment {spec!r}: {item.strip()!r} is not NAME:FRACTION with NAME one of "
                             f"{', '.join(known)} for {modality} data (e.g. mask:0.25)")  # fmt: skip
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"--augment {spec!r}: {value!r} is not a number (expected e.g. mask:0.25)") from None
        if not 0 <= fraction < 1:
            raise ValueError(f"--augment {spec!r}: the fraction must be in [0, 1), got {fraction}")
        transforms.append(build_transform(known[name], fraction, modality, options))
    return transforms[0] if len(transforms) == 1 else Compose(tuple(transforms))
