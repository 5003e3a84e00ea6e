"""Masking as data augmentation for supervised training, and occlusion for robustness checks.

Transforms are callables ``transform(batch, generator) -> batch`` that draw only from the explicit CPU
generator (so a resumed run replays them) and never change the input in place:

- images ``(B, C, H, W)`` (a tensor, an object with ``.images`` such as ``ImageBatch``, or a dict with
  ``"images"``): :class:`Cutout` (DeVries & Taylor 2017: one rectangle of a fixed area fraction),
  :class:`RandomErasing` (Zhong et al. 2020: a rectangle of random area and aspect, random-value fill),
  :class:`PatchDrop` (an exact fraction of ``p x p`` patches zeroed, the pixel-space view of MAE masking);
- text (a dict with ``"ids"`` long (B, L) and ``"padding"`` bool (B, L), True = padded, as built by
  ``TextBlocksData``; or a bare ids tensor): :class:`MaskSubstitution` (chosen tokens become [MASK], as in
  BERT's corruption), :class:`TokenDropout` (chosen tokens are deleted and the row closes up, word dropout of
  Iyyer et al. 2015); padding and ``special_ids`` ([CLS], [SEP], ...) are never touched;
- tables (a dict with ``"values"`` float (B, C) and ``"missing"`` bool (B, C), True = no observed value, as
  ``TableTrainData`` returns; or a float tensor where NaN = missing): :class:`CellMasking` turns observed
  cells into missing ones.

Every transform hides an exact count per row, ``n - int(n * (1 - fraction))`` of the ``n`` eligible
tokens (MAE's budget via :func:`masklab.masks.generators.random_masking`), except the two rectangle
transforms (area rounded to whole pixels). :func:`masklab.data.augment.parse_augment` reads ``--augment mask:0.25``;
:func:`masklab.eval.occlusion.occlude` is the deterministic-given-a-seed occlusion used to measure robustness.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from masklab.masks.generators import random_masking

__all__ = [
    "CellMasking",
    "Compose",
    "Cutout",
    "MaskSubstitution",
    "PatchDrop",
    "RandomErasing",
    "TokenDropout",
    "Transform",
]

Modality = Literal["image", "text", "table"]
MODALITIES = ("image", "text", "table")


class Transform(Protocol):
    def __call__(self, batch: Any, generator: torch.Generator) -> Any: ...


def check_fraction(name: str, value: float, *, upper_inclusive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (0 <= value <= 1 if upper_inclusive else 0 <= value < 1):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------ batch plumbing
def _get(batch: Any, key: str) -> Tensor:
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, dict):
        if key not in batch:
            raise ValueError(f"the batch dict has no {key!r} entry (keys: {sorted(batch)})")
        return batch[key]
    if hasattr(batch, key):
        return getattr(batch, key)
    raise ValueError(f"cannot find {key!r} in a batch of type {type(batch).__name__}")


def _put(batch: Any, **values: Tensor) -> Any:
    """``batch`` with entries replaced (a tensor batch takes the single value)."""
    if isinstance(batch, Tensor):
        return next(iter(values.values()))
    if isinstance(batch, dict):
        return {**batch, **values}
    return dataclasses.replace(batch, **values)


def _images(batch: Any) -> Tensor:
    images = _get(batch, "images")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"image transforms take float images (B, C, H, W), got {tuple(images.shape)} {images.dtype}")
    return images


def _rectangles(hw: tuple[int, int], h: Tensor, w: Tensor, generator: torch.Generator | None) -> Tensor:
    """``hidden`` bool (B, H, W): one ``h x w`` rectangle per image (long (B,) sides), uniform position inside."""
    H, W = hw
    u = torch.rand(len(h), 2, generator=generator, dtype=torch.float64)  # (B, 2)
    top = torch.floor(u[:, 0] * (H - h + 1)).long()
    left = torch.floor(u[:, 1] * (W - w + 1)).long()
    rows = torch.arange(H)[None, :, None]  # (1, H, 1)
    cols = torch.arange(W)[None, None, :]  # (1, 1, W)
    in_rows = (rows >= top[:, None, None]) & (rows < (top + h)[:, None, None])
    in_cols = (cols >= left[:, None, None]) & (cols < (left + w)[:, None, None])
    return in_rows & in_cols  # (B, H, W)


# ------------------------------------------------------------------------------------------- images
@dataclass(frozen=True)
class Cutout:
    """Zero (or ``fill``) one rectangle covering ``fraction`` of each image, fully inside it.

    The rectangle is as square as the image allows (``h ~ w ~ sqrt(f H W)``, one side capped at the image's)
    and covers ``f H W`` pixels up to rounding one side.
    """

    fraction: float
    fill: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("cutout fraction", self.fraction, upper_inclusive=True)

    def hidden(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """The pixel mask ``hidden`` bool (B, H, W), True = occluded."""
        B, _, H, W = shape
        area = self.fraction * H * W
        h = min(H, round(math.sqrt(area)))
        w = min(W, round(area / h)) if h else 0
        if w == W:  # a wide area on a narrow image: the full width, and the height that gives the area
            h = min(H, round(area / W))
        return _rectangles((H, W), torch.full((B,), h), torch.full((B,), w), generator)

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        images = _images(batch)
        hidden = self.hidden(tuple(images.shape), generator).to(images.device)
        return _put(batch, images=images.masked_fill(hidden[:, None], self.fill))


@dataclass(frozen=True)
class RandomErasing:
    """Random Erasing (Zhong et al. 2020, Alg. 1): with probability ``p`` erase a rectangle of area
    ``U(scale) * H * W`` and aspect ``exp(U(log ratio))`` with uniform random values (``value=None``) or
    ``value``. Up to 10 tries per image for a rectangle that fits, else the image is left alone."""

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float | None = None

    def __post_init__(self) -> None:
        check_fraction("erasing probability p", self.p, upper_inclusive=True)
        if not 0 < self.scale[0] <= self.scale[1] <= 1 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"erasing needs 0 < scale low <= high <= 1 and 0 < ratio low <= high, got "
                             f"scale={self.scale}, ratio={self.ratio}")  # fmt: skip

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        images = _images(batch)
        B, _, H, W = images.shape
        u = torch.rand(B, 10, 2, generator=generator, dtype=torch.float64)  # (B, tries, 2)
        area = (self.scale[0] + (self.scale[1] - self.scale[0]) * u[..., 0]) * H * W
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
        h = torch.round(torch.sqrt(area * aspect)).long()  # (B, tries)
        w = torch.round(torch.sqrt(area / aspect)).long()
        fits = (h >= 1) & (h <= H) & (w >= 1) & (w <= W)
        first = torch.argmax(fits.to(torch.uint8), dim=1)  # (B,) first try that fits
        take = fits.any(dim=1) & (torch.rand(B, generator=generator) < self.p)  # (B,)
        h_b, w_b = h[torch.arange(B), first], w[torch.arange(B), first]
        hidden = _rectangles((H, W), h_b.clamp(1, H), w_b.clamp(1, W), generator) & take[:, None, None]
        if self.value is None:
            fill = torch.rand(images.shape, generator=generator).to(images)  # Zhong et al.'s random values
        else:
            fill = torch.full_like(images, self.value)
        return _put(batch, images=torch.where(hidden[:, None].to(images.device), fill, images))


@dataclass(frozen=True)
class PatchDrop:
    """Zero (or ``fill``) exactly ``L - int(L * (1 - fraction))`` of the ``patch x patch`` squares of each image."""

    fraction: float
    patch: int = 4
    fill: float = 0.0

    def __post_init__(self) -> None:
        check_fraction("patch-drop fraction", self.fraction)
        if isinstance(self.patch, bool) or not isinstance(self.patch, int) or self.patch < 1:
            raise ValueError(f"patch must be an int >= 1, got {self.patch!r}")

    def hidden(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        B, _, H, W = shape
        if H % self.patch or W % self.patch:
            raise ValueError(f"PatchDrop with {self.patch}x{self.patch} patches needs image sides divisible by "
                             f"{self.patch}, got {H}x{W}")  # fmt: skip
        gh, gw = H // self.patch, W // self.patch
        masked = random_masking(B, gh * gw, self.fraction, generator=generator).masked  # (B, L)
        cells = masked.view(B, gh, 1, gw, 1).expand(B, gh, self.patch, gw, self.patch)
        return cells.reshape(B, H, W)

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        images = _images(batch)
        hidden = self.hidden(tuple(images.shape), generator).to(images.device)
        return _put(batch, images=images.masked_fill(hidden[:, None], self.fill))


# --------------------------------------------------------------------------------------------- text
def _text(batch: Any, special_ids: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """(ids long (B, L), padding bool (B, L), protected bool (B, L): padding or a special token)."""
    ids = _get(batch, "ids")
    if ids.ndim != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"text transforms take integer ids (B, L), got {tuple(ids.shape)} {ids.dtype}")
    padding = _get(batch, "padding") if not isinstance(batch, Tensor) else torch.zeros_like(ids, dtype=torch.bool)
    special = torch.isin(ids, torch.tensor(list(special_ids), dtype=ids.dtype, device=ids.device))
    return ids, padding, padding | special


def _choose(protected: Tensor, fraction: float, generator: torch.Generator | None) -> Tensor:
    """bool (B, L): exactly ``n - int(n * (1 - fraction))`` of each row's unprotected positions."""
    B, L = protected.shape
    return random_masking(B, L, fraction, generator=generator, protected=protected.cpu()).masked.to(protected.device)


@dataclass(frozen=True)
class MaskSubstitution:
    """Replace ``fraction`` of each row's real, non-special tokens by ``mask_id``."""

    fraction: float
    mask_id: int
    special_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_fraction("mask-substitution fraction", self.fraction)

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        ids, _, protected = _text(batch, self.special_ids)
        chosen = _choose(protected, self.fraction, generator)
        return _put(batch, ids=ids.masked_fill(chosen, self.mask_id))


@dataclass(frozen=True)
class TokenDropout:
    """Delete ``fraction`` of each row's real, non-special tokens; the rest close up (order kept) and the
    freed positions at the end become padding (``pad_id``, ``padding`` True, ``word_ids`` -1)."""

    fraction: float
    pad_id: int = 0
    special_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_fraction("token-dropout fraction", self.fraction)

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        ids, padding, protected = _text(batch, self.special_ids)
        keep = ~padding & ~_choose(protected, self.fraction, generator)  # (B, L)
        # A stable sort on "dropped or padded" moves the kept tokens to the front in their original order.
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices  # (B, L)
        new_padding = torch.arange(ids.shape[1], device=ids.device)[None, :] >= keep.sum(dim=1, keepdim=True)
        out = {"ids": ids.gather(1, order).masked_fill(new_padding, self.pad_id)}
        if isinstance(batch, Tensor):
            return out["ids"]
        out["padding"] = new_padding
        word_ids = batch.get("word_ids") if isinstance(batch, dict) else getattr(batch, "word_ids", None)
        if word_ids is not None:
            out["word_ids"] = word_ids.gather(1, order).masked_fill(new_padding, -1)
        return _put(batch, **out)


# -------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class CellMasking:
    """Make ``fraction`` of each row's observed cells missing.

    A dict batch gets ``missing`` True there and the encoded placeholders (value 0, category 0) that
    ``encode_frame`` writes for missing cells; a float tensor gets NaN.
    """

    fraction: float

    def __post_init__(self) -> None:
        check_fraction("cell-masking fraction", self.fraction)

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        if isinstance(batch, Tensor):
            if batch.ndim != 2 or not batch.is_floating_point():
                raise ValueError(f"cell masking takes a float table (B, C) or a batch dict, got {tuple(batch.shape)}")
            chosen = _choose(torch.isnan(batch), self.fraction, generator)
            return batch.masked_fill(chosen, math.nan)
        missing = _get(batch, "missing")
        chosen = _choose(missing, self.fraction, generator)  # (B, C) observed cells to hide
        out = {"missing": missing | chosen, "values": _get(batch, "values").masked_fill(chosen, 0.0)}
        if "categories" in batch:
            out["categories"] = batch["categories"].masked_fill(chosen, 0)
        return _put(batch, **out)


# ------------------------------------------------------------------------------------------ compose
@dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each drawing from the same generator."""

    transforms: tuple[Transform, ...]

    def __call__(self, batch: Any, generator: torch.Generator) -> Any:
        for transform in self.transforms:
            batch = transform(batch, generator)
        return batch
