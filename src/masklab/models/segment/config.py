"""Configuration of a segmentation head on an MAE encoder: a frozen dataclass, its presets and ``from_preset``.

``encoder`` is the MAE's own config dict (``MAEConfig.to_dict()``), so a saved segmenter rebuilds its encoder
without the pretraining run; the encoder weights come from the segmenter's checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from masklab.core.contract import ModelConfig, preset_config

if TYPE_CHECKING:
    from masklab.models.mae import MAEConfig

from masklab.models.segment.heads import DECODERS

# Named head settings. "probe": frozen encoder, only the head learns; "finetune": the same head with the
# encoder trained too (layer-wise learning-rate decay). Chosen on the validation split (docs/benchmarks.md).
PRESETS: dict[str, dict[str, Any]] = {
    "probe": dict(freeze_encoder=True, decoder="unet", dice_weight=1.0),
    "finetune": dict(freeze_encoder=False, decoder="unet", dice_weight=1.0, layer_decay=0.75),
}


@dataclass(frozen=True)
class SegmentConfig(ModelConfig):
    """Everything that rebuilds a :class:`~masklab.models.segment.model.Segmenter`.

    ``num_classes`` counts background: 2 = binary subject/background, K = classes ``0..K-1`` (0 = background).
    ``decoder``: ``"unet"`` (a small U-Net: conv stem skips at 1, 1/2, ... resolution, token features at the
    token grid; the presets' decoder), ``"conv"`` (token features upsampled + full-resolution 3x3 convs of the
    image; the field's default, so a config saved before ``"unet"`` rebuilds its head) or
    ``"pixel-mlp"`` (upsampled token features + the pixel's colour through a 1x1 MLP); see
    :mod:`masklab.models.segment.heads`. ``head_dim``: token features after projection; ``pixel_dim``: width
    of the decoder's fused layers; ``pixel_features``: channels of the conv decoder's raw-image branch
    (the U-Net's full-resolution width; it doubles per stage, at most 4x).
    ``layers``: outputs of the last ``layers`` encoder blocks are concatenated as token features.
    ``dice_weight``: the loss is cross-entropy + ``dice_weight`` x (1 - soft Dice of the subject classes).
    ``freeze_encoder``: train the head only (a probe) or fine-tune the encoder with it.
    ``layer_decay``: fine-tuning's layer-wise learning-rate decay (BEiT / MAE): encoder block ``i`` of ``d``
    learns at ``layer_decay ** (d - i)`` x the head's rate, the patch embedding at ``layer_decay ** (d + 1)``;
    1.0 = one rate for all (what a config saved without this field trained with).
    ``to_dict`` gives the fields (``encoder`` as the MAE config dict); a run saves
    ``{"kind": "segment", **to_dict()}``. A saved config without ``decoder`` (written before the conv decoder)
    rebuilds the ``"pixel-mlp"`` head it was trained with.
    """

    encoder: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 2
    decoder: str = "conv"
    head_dim: int = 32
    pixel_dim: int = 32
    pixel_features: int = 16
    layers: int = 1
    dice_weight: float = 0.0
    freeze_encoder: bool = True
    layer_decay: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, dict) or self.encoder.get("kind", "mae") != "mae":
            raise ValueError(f"encoder must be an MAE config dict (kind 'mae'), got {self.encoder!r:.80}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + at least one class), got {self.num_classes}")
        if min(self.head_dim, self.pixel_dim, self.pixel_features) < 1:
            raise ValueError(f"head_dim, pixel_dim and pixel_features must be >= 1, got {self.head_dim}, "
                             f"{self.pixel_dim} and {self.pixel_features}")  # fmt: skip
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.dice_weight < 0:
            raise ValueError(f"dice_weight must be >= 0, got {self.dice_weight}")
        depth = self.encoder_config().depth  # validates the encoder fields
        if not 1 <= self.layers <= depth:
            raise ValueError(f"layers must be in [1, {depth}] (the encoder's depth), got {self.layers}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | SegmentConfig) -> SegmentConfig:
        """Rebuild from :meth:`to_dict`. A saved config without ``decoder`` predates the conv decoder: it
        rebuilds the ``"pixel-mlp"`` head its checkpoint holds."""
        # Every saved config has all its fields; presets name the decoder (from_preset).
        if (
            isinstance(values, Mapping)
            and {"encoder", "head_dim", "pixel_dim"} <= set(values)
            and "decoder" not in values
        ):
            values = {**values, "decoder": "pixel-mlp"}
        return super().from_dict(values)

    def encoder_config(self) -> MAEConfig:
        """The encoder's :class:`~masklab.models.mae.MAEConfig`."""
        from masklab.models.mae import MAEConfig

        return MAEConfig.from_dict(self.encoder)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SegmentConfig:
        """Preset ``name`` (see :data:`PRESETS`) with ``overrides``; ``encoder`` (an ``MAEConfig`` or its dict)
        is required."""
        if name not in PRESETS:
            raise ValueError(f"unknown segment preset {name!r}; known: {', '.join(PRESETS)}")
        if "encoder" not in overrides:
            raise ValueError("a segment preset needs encoder= (the MAE config the head sits on)")
        encoder = overrides["encoder"]
        if isinstance(encoder, ModelConfig):
            overrides["encoder"] = encoder.to_dict()
        elif isinstance(encoder, Mapping):
            overrides["encoder"] = dict(encoder)
        return preset_config(cls, PRESETS, name, **overrides)
