"""Occlusion for robustness checks: a deterministic-given-a-seed masking of a batch's inputs."""

from __future__ import annotations

from typing import Any

import torch

from masklab.data.augment import build_transform
from masklab.masks.augment import Modality, check_fraction


def occlude(
    batch: Any,
    fraction: float,
    generator: torch.Generator,
    modality: Modality,
    *,
    kind: str | None = None,
    **options: Any,
) -> Any:
    """Occlude ``fraction`` of every input for a robustness check (same seed, same occlusion).

    ``kind``: images ``"patches"`` (default; :class:`~masklab.masks.augment.PatchDrop`, ``patch_size``
    option) or ``"block"`` (:class:`~masklab.masks.augment.Cutout`: one rectangle); text ``"mask"`` (default;
    [MASK] substitution, needs ``mask_id``) or ``"delete"``; tables ``"cells"`` (default).
    ``special_ids``/``pad_id`` as in :func:`masklab.data.augment.parse_augment`.
    """
    defaults = {"image": "patches", "text": "mask", "table": "cells"}
    if modality not in defaults:
        raise ValueError(f"modality must be one of {', '.join(defaults)}, got {modality!r}")
    kind = kind or defaults[modality]
    names = {("image", "patches"): "patchdrop", ("image", "block"): "cutout", ("text", "mask"): "substitute",
             ("text", "delete"): "tokendrop", ("table", "cells"): "cells"}  # fmt: skip
    if (modality, kind) not in names:
        kinds = [k for m, k in names if m == modality]
        raise ValueError(f"occlusion kind for {modality} data must be one of {', '.join(kinds)}, got {kind!r}")
    check_fraction("occlusion fraction", fraction)
    return build_transform(names[modality, kind], fraction, modality, options)(batch, generator)
