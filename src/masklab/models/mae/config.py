"""The MAE's config and its named sizes: ``mae-tiny`` (tests), ``mae-small-28`` (MNIST on a laptop CPU) and the
paper-style ViTs.

A preset fixes the architecture and its default image size; the data decides the channel count and the
pixel statistics, and ``image_size`` may be overridden (it must stay a multiple of the patch size).
Each preset also carries pretraining defaults (batch size, peak learning rate, warmup) sized for it.
Mask polarity: ``masked: bool (B, L)``, True = hidden / to be predicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from masklab.core.contract import ModelConfig
from masklab.masks.generators import grid_cell
from masklab.masks.strategies import resolve
from masklab.models.mae.masker import LearnedMaskerConfig
from masklab.nn.blocks import TransformerConfig
from masklab.tokenizers.patches import patch_grid

# Kinds resolved through masklab.masks.strategies; all hide the same count per row (MAE's ids_keep).
MASK_KINDS = ("random", "block", "grid", "learned", "attention-high", "attention-low")
VARIANTS = ("mae", "simmim")
OBJECTIVES = ("reconstruct", "classify")
POOLS = ("mean", "cls")


# Architecture per preset. ViT-B/16 with an 8-block 512-wide decoder is the MAE paper's default (Table 1);
# ViT-T/16 (DeiT-Tiny width) has no paper decoder, so it gets a proportionally small one.
PRESETS: dict[str, dict[str, Any]] = {
    "mae-tiny": dict(
        image_size=(16, 16), patch_size=4, dim=32, depth=2, heads=2,
        decoder_dim=32, decoder_depth=1, decoder_heads=2, mlp_hidden=64, decoder_mlp_hidden=64,
    ),
    # 28x28 digits as a 4x4 grid of 7x7 patches: 16 tokens, 4 visible at 75% masking. Sized so a few
    # minutes on 2 CPU cores reach ~50 epochs of mnist5k (4x4 patches cost 3x more per image and learned
    # less in the same time in our runs).
    "mae-small-28": dict(
        image_size=(28, 28), patch_size=7, dim=128, depth=4, heads=4,
        decoder_dim=128, decoder_depth=2, decoder_heads=4,
    ),
    # 32x32 colour images as an 8x8 grid of 4x4 patches (the segmentation built-in): small patches so a
    # per-pixel head can draw subject boundaries; a one-block decoder keeps pretraining to minutes on a CPU.
    "mae-seg-32": dict(
        image_size=(32, 32), patch_size=4, dim=96, depth=4, heads=4,
        decoder_dim=64, decoder_depth=1, decoder_heads=4,
    ),
    "mae-vit-t": dict(
        image_size=(224, 224), patch_size=16, dim=192, depth=12, heads=3,
        decoder_dim=256, decoder_depth=4, decoder_heads=8,
    ),
    "mae-vit-b": dict(
        image_size=(224, 224), patch_size=16, dim=768, depth=12, heads=12,
        decoder_dim=512, decoder_depth=8, decoder_heads=16,
    ),
}  # fmt: skip

# Pretraining defaults per preset: examples per step, peak AdamW learning rate, warmup as a fraction of steps.
# MAE's rule is lr = 1.5e-4 * batch / 256; the small presets train for minutes, not 800 epochs, and take more.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "mae-tiny": dict(batch_size=32, lr=1e-3, warmup_fraction=0.05),
    "mae-small-28": dict(batch_size=128, lr=1.5e-3, warmup_fraction=0.05),
    "mae-seg-32": dict(batch_size=128, lr=1.5e-3, warmup_fraction=0.05),
    "mae-vit-t": dict(batch_size=64, lr=1.5e-4 * 64 / 256 * 4, warmup_fraction=0.05),
    "mae-vit-b": dict(batch_size=64, lr=1.5e-4 * 64 / 256, warmup_fraction=0.05),
}


@dataclass(frozen=True)
class MAEConfig(ModelConfig):
    """Everything that rebuilds an :class:`~masklab.models.mae.model.MAE` (saved as ``config.json["model"]``)."""

    mlp_widths: ClassVar[Mapping[str, str]] = {"mlp_hidden": "dim", "decoder_mlp_hidden": "decoder_dim"}

    image_size: tuple[int, int] = (28, 28)  # (H, W), multiples of patch_size
    patch_size: int = 4
    channels: int = 1
    dim: int = 128
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_hidden: int | None = None  # encoder MLP hidden width; None = 4 * dim
    decoder_mlp_hidden: int | None = None  # decoder MLP hidden width; None = 4 * decoder_dim
    norm_eps: float = 1e-6
    drop_path: float = 0.0
    mask_ratio: float = 0.75  # fraction of patches hidden from the encoder while training
    mask_kind: str = "random"  # random | block (BEiT) | grid | learned | attention-high | attention-low
    masker: dict[str, Any] | None = None  # learned: LearnedMaskerConfig overrides (dim, spread_weight, ...)
    attention_noise: float = 0.25  # attention-*: tie-breaking noise on min-max scaled scores (0 = none)
    norm_pix_loss: bool = False
    variant: str = "mae"  # mae: encoder sees visible patches only | simmim: encoder sees mask tokens
    objective: str = "reconstruct"  # reconstruct (pretraining) | classify (fine-tuning)
    num_classes: int = 0
    pool: str = "mean"  # features: mean of the patch tokens | the CLS token
    pixel_mean: tuple[float, ...] | None = None  # per channel; None = 0
    pixel_std: tuple[float, ...] | None = None  # per channel; None = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 4 * self.dim)
        if self.decoder_mlp_hidden is None:
            object.__setattr__(self, "decoder_mlp_hidden", 4 * self.decoder_dim)
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be (height, width), got {self.image_size!r}")
        patch_grid(*self.image_size, self.patch_size, what=f"image_size {self.image_size}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(
                f"mask ratio must be in [0, 1), got {self.mask_ratio!r} (a ratio of 1 would hide every patch)"
            )
        resolve(self.mask_kind, allowed=MASK_KINDS, what="mask_kind")
        for name, value, allowed in (
            ("variant", self.variant, VARIANTS),
            ("objective", self.objective, OBJECTIVES),
            ("pool", self.pool, POOLS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.channels:
                raise ValueError(f"{name} has {len(value)} entries for {self.channels} channel(s)")
        if self.pixel_std is not None and min(self.pixel_std) <= 0:
            raise ValueError(f"pixel_std must be positive, got {self.pixel_std}")
        if self.objective == "classify" and self.num_classes < 2:
            raise ValueError(f"objective 'classify' needs num_classes >= 2, got {self.num_classes}")
        if self.objective == "reconstruct":
            keep = int(self.num_patches * (1 - self.mask_ratio))
            if keep < 1 or keep == self.num_patches:
                raise ValueError(
                    f"mask ratio {self.mask_ratio} keeps {keep} of {self.num_patches} patches visible; "
                    "pretraining needs at least one visible and one hidden patch"
                )
            if self.mask_kind == "grid":
                _ = self.grid_cell  # validates the ratio and the grid
            if self.mask_kind == "learned":
                self.masker_config()  # validates the overrides
        if self.masker is not None and self.mask_kind != "learned":
            raise ValueError(f"masker settings only apply to mask_kind='learned', not {self.mask_kind!r}")
        if self.attention_noise < 0:
            raise ValueError(f"attention_noise must be >= 0, got {self.attention_noise}")
        self.encoder_config()  # validates dim/heads/depth
        if self.objective == "reconstruct":
            self.decoder_config()

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(*self.image_size, self.patch_size)

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    def masker_config(self) -> LearnedMaskerConfig:
        """The learned masker (``mask_kind="learned"``): it scores the normalised patches ``(B, L, P)``."""
        overrides = dict(self.masker or {})
        clash = sorted({"in_dim", "max_tokens"} & set(overrides))
        if clash:
            raise ValueError(f"masker settings {clash} follow from the image and patch size; leave them out")
        return LearnedMaskerConfig.from_dict({"in_dim": self.patch_dim, "max_tokens": self.num_patches, **overrides})

    @property
    def grid_cell(self) -> int:
        """Side of the square that keeps one visible patch under ``mask_kind="grid"``: ratio = 1 - 1/cell²."""
        return grid_cell(self.mask_ratio, self.grid)

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_hidden=self.mlp_hidden,
            drop_path=self.drop_path,
            norm_eps=self.norm_eps,
        )

    def decoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.decoder_dim,
            depth=self.decoder_depth,
            heads=self.decoder_heads,
            mlp_hidden=self.decoder_mlp_hidden,
            norm_eps=self.norm_eps,
        )
