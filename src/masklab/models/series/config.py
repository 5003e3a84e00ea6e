"""Configuration of the masked series model (:class:`~masklab.models.series.model.PatchTST`) and its presets."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from masklab.core.contract import ModelConfig, preset_config
from masklab.nn import TransformerConfig

# "random" and "tail" are strategies of masklab.masks.strategies; "mixed" draws one of the two per series.
MASK_KINDS = ("random", "tail", "mixed")
MISSING_FILLS = ("mean", "zero")
POOLS = ("mean", "mean-max")
INPUT_TRANSFORMS = ("none", "asinh")

# Non-overlapping patches (stride = patch_len) for masked pretraining, as PatchTST §3.3 prescribes: overlapping
# patches would show a hidden patch's steps inside its visible neighbours.
PRESETS: dict[str, dict[str, Any]] = {
    "series-tiny": dict(patch_len=4, stride=4, dim=32, depth=2, heads=2, mlp_hidden=64, max_patches=64),
    "series-small": dict(patch_len=8, stride=8, dim=64, depth=3, heads=4, mlp_hidden=128, max_patches=256),
}


@dataclass(frozen=True)
class SeriesConfig(ModelConfig):
    """Shape and masking of a channel-independent masked patch transformer (PatchTST).

    ``channels``: C of the data; ``max_patches``: the longest series the position table covers
    (``1 + ceil((T - patch_len) / stride)`` patches). ``mask_kind``: ``random`` (``mask_ratio`` of each
    channel's real patches, PatchTST's 40%), ``tail`` (the last ``tail_patches`` real patches: forecasting)
    or ``mixed`` (each series draws one of the two). ``missing``: what an unobserved step becomes, ``mean``
    (0 after normalisation) or ``zero`` (raw 0, HF PatchTST's convention); ``loss_on_missing``: HF also
    scores the reconstruction of unobserved steps, masklab by default does not.

    ``channel_mixing``: one token per patch carrying all ``C`` channels (``Linear(C * P, D)``, one sequence
    per series, a patch hidden in all channels at once) instead of PatchTST's channel-independent tokens;
    ``pool``: how :meth:`~masklab.models.series.model.PatchTST.embed` pools the real patches, ``mean`` or
    ``mean-max`` (both concatenated); ``norm_visible``: the instance-normalisation statistics of a masked
    series leave out its hidden steps (so a tail-masked training window is normalised as a forecast's context
    is); ``stats_input``: every token's input also carries its channels' normalisation statistics (signed
    ``log1p`` of the mean, ``log`` of the scale), so the encoder sees the level and amplitude that instance
    normalisation removes; ``input_transform``: ``asinh`` feeds ``asinh(x / input_scale)`` instead of ``x``
    (before any normalisation; ``input_scale`` a dataset-level constant), linear for ``|x| << input_scale``
    and logarithmic beyond, so series whose amplitudes span orders of magnitude share one range while keeping
    their absolute amplitude (reconstructions are mapped back with ``sinh``). These options default to the
    original model, which is what a saved config without them builds.
    """

    mlp_widths: ClassVar[Mapping[str, str]] = {"mlp_hidden": "dim"}

    channels: int
    patch_len: int = 8
    stride: int = 8
    max_patches: int = 256
    dim: int = 64
    depth: int = 3
    heads: int = 4
    mlp_hidden: int | None = None  # MLP hidden width (HF PatchTST ffn_dim); None = 2 * dim
    dropout: float = 0.0
    norm_eps: float = 1e-5
    final_norm: bool = False  # PatchTST (pre-norm) has none
    scaling: bool = True  # reversible instance normalisation
    min_scale: float = 1e-5
    mask_kind: str = "random"
    mask_ratio: float = 0.4
    tail_patches: int = 2
    missing: str = "mean"
    loss_on_missing: bool = False
    channel_mixing: bool = False
    pool: str = "mean"
    norm_visible: bool = False
    stats_input: bool = False
    input_transform: str = "none"
    input_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 2 * self.dim)
        for name in ("channels", "patch_len", "stride", "max_patches", "dim", "depth", "heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"SeriesConfig.{name} must be an int >= 1, got {getattr(self, name)!r}")
        if self.stride > self.patch_len:
            raise ValueError(f"stride ({self.stride}) must be <= patch_len ({self.patch_len}): no step may be skipped")
        if self.mask_kind not in MASK_KINDS:
            raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {self.mask_kind!r}")
        if self.missing not in MISSING_FILLS:
            raise ValueError(f"missing must be one of {MISSING_FILLS}, got {self.missing!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")
        if self.input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f"input_transform must be one of {INPUT_TRANSFORMS}, got {self.input_transform!r}")
        if isinstance(self.input_scale, bool) or not isinstance(self.input_scale, numbers.Real):
            raise ValueError(f"input_scale must be a number > 0, got {self.input_scale!r}")
        if not (math.isfinite(self.input_scale) and self.input_scale > 0):
            raise ValueError(f"input_scale must be a finite number > 0, got {self.input_scale!r}")
        object.__setattr__(self, "input_scale", float(self.input_scale))
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.tail_patches < 1:
            raise ValueError(f"tail_patches must be >= 1, got {self.tail_patches}")

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim, depth=self.depth, heads=self.heads, mlp_hidden=self.mlp_hidden, dropout=self.dropout,
            norm_first=True, norm_eps=self.norm_eps, activation="gelu", final_norm=self.final_norm,
        )  # fmt: skip


def from_preset(name: str, **overrides: Any) -> SeriesConfig:
    """The :class:`SeriesConfig` of preset ``name`` with ``overrides``; ``channels`` (C of the data) is required."""
    if name not in PRESETS:
        raise ValueError(f"unknown series preset {name!r}; known: {', '.join(PRESETS)}")
    if "channels" not in overrides:
        raise ValueError("a series preset needs channels= (the number of channels of the data)")
    return preset_config(SeriesConfig, PRESETS, name, **overrides)


@dataclass(frozen=True)
class SeriesClassifierConfig(ModelConfig):
    """A :class:`~masklab.models.series.classifier.SeriesClassifier`: its encoder's :class:`SeriesConfig`
    (``series``), ``num_classes`` K >= 2 and the dropout before the linear head. ``to_dict`` gives
    ``{"series": {...}, "num_classes": K, "head_dropout": p}``, the layout runs have always saved."""

    nested: ClassVar[Mapping[str, type]] = {"series": SeriesConfig}

    series: SeriesConfig
    num_classes: int
    head_dropout: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, numbers.Integral):
            raise ValueError(f"num_classes must be an int >= 2, got {self.num_classes!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.head_dropout <= 1.0:
            raise ValueError(f"head_dropout must be in [0, 1], got {self.head_dropout}")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "head_dropout", float(self.head_dropout))


def classifier_from_preset(name: str, **overrides: Any) -> SeriesClassifierConfig:
    """A classifier on the encoder of series preset ``name``: ``num_classes`` is required, ``head_dropout``
    optional, the other ``overrides`` go to :func:`from_preset` (``channels`` required)."""
    head = {k: overrides.pop(k) for k in ("num_classes", "head_dropout") if k in overrides}
    series = from_preset(name, **overrides)
    if "num_classes" not in head:
        raise ValueError("a series classifier preset needs num_classes= (the number of classes, >= 2)")
    return SeriesClassifierConfig(series, **head)
