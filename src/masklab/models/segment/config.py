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

# Named head settings. "probe": frozen encoder, only the head learns; "finetune": the same head with the
# encoder trained too.
PRESETS: dict[str, dict[str, Any]] = {
    "probe": dict(head_dim=32, pixel_dim=64, freeze_encoder=True),
    "finetune": dict(head_dim=32, pixel_dim=64, freeze_encoder=False),
}


@dataclass(frozen=True)
class SegmentConfig(ModelConfig):
    """Everything that rebuilds a :class:`~masklab.models.segment.model.Segmenter`.

    ``num_classes`` counts background: 2 = binary subject/background, K = classes ``0..K-1`` (0 = background).
    ``head_dim``: token features per pixel after projection; ``pixel_dim``: hidden width of the per-pixel MLP.
    ``freeze_encoder``: train the head only (a probe) or fine-tune the encoder with it. ``to_dict`` gives the
    fields (``encoder`` as the MAE config dict); a run saves ``{"kind": "segment", **to_dict()}``.
    """

    encoder: dict[str, Any] = field(default_factory=dict)
    num_classes: int = 2
    head_dim: int = 32
    pixel_dim: int = 64
    freeze_encoder: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, dict) or self.encoder.get("kind", "mae") != "mae":
            raise ValueError(f"encoder must be an MAE config dict (kind 'mae'), got {self.encoder!r:.80}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background + at least one class), got {self.num_classes}")
        if self.head_dim < 1 or self.pixel_dim < 1:
            raise ValueError(f"head_dim and pixel_dim must be >= 1, got {self.head_dim} and {self.pixel_dim}")
        self.encoder_config()  # validates the encoder fields

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
