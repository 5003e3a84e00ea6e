"""Named MAE sizes: ``mae-tiny`` (tests), ``mae-small-28`` (MNIST on a laptop CPU) and the paper-style ViTs.

A preset fixes the architecture and its default image size; the data decides the channel count and the
pixel statistics, and ``image_size`` may be overridden (it must stay a multiple of the patch size).
Each preset also carries pretraining defaults (batch size, peak learning rate, warmup) sized for it.
"""

from __future__ import annotations

from typing import Any

from masklab.models.mae import MAEConfig

# Architecture per preset. ViT-B/16 with an 8-block 512-wide decoder is the MAE paper's default (Table 1);
# ViT-T/16 (DeiT-Tiny width) has no paper decoder, so it gets a proportionally small one.
MAE_PRESETS: dict[str, dict[str, Any]] = {
    "mae-tiny": dict(
        image_size=(16, 16), patch_size=4, dim=32, depth=2, heads=2,
        decoder_dim=32, decoder_depth=1, decoder_heads=2, mlp_ratio=2.0,
    ),
    # 28x28 digits as a 4x4 grid of 7x7 patches: 16 tokens, 4 visible at 75% masking. Sized so a few
    # minutes on 2 CPU cores reach ~50 epochs of mnist5k (4x4 patches cost 3x more per image and learned
    # less in the same time in our runs).
    "mae-small-28": dict(
        image_size=(28, 28), patch_size=7, dim=128, depth=4, heads=4,
        decoder_dim=128, decoder_depth=2, decoder_heads=4, mlp_ratio=4.0,
    ),
    "mae-vit-t": dict(
        image_size=(224, 224), patch_size=16, dim=192, depth=12, heads=3,
        decoder_dim=256, decoder_depth=4, decoder_heads=8, mlp_ratio=4.0,
    ),
    "mae-vit-b": dict(
        image_size=(224, 224), patch_size=16, dim=768, depth=12, heads=12,
        decoder_dim=512, decoder_depth=8, decoder_heads=16, mlp_ratio=4.0,
    ),
}  # fmt: skip

# Pretraining defaults per preset: examples per step, peak AdamW learning rate, warmup as a fraction of steps.
# MAE's rule is lr = 1.5e-4 * batch / 256; the small presets train for minutes, not 800 epochs, and take more.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "mae-tiny": dict(batch_size=32, lr=1e-3, warmup_fraction=0.05),
    "mae-small-28": dict(batch_size=128, lr=1.5e-3, warmup_fraction=0.05),
    "mae-vit-t": dict(batch_size=64, lr=1.5e-4 * 64 / 256 * 4, warmup_fraction=0.05),
    "mae-vit-b": dict(batch_size=64, lr=1.5e-4 * 64 / 256, warmup_fraction=0.05),
}


def preset_config(name: str, **overrides: Any) -> MAEConfig:
    """The :class:`MAEConfig` of preset ``name`` with ``overrides`` applied (``ValueError`` if unknown)."""
    if name not in MAE_PRESETS:
        raise ValueError(f"unknown MAE preset {name!r}; known: {', '.join(MAE_PRESETS)}")
    return MAEConfig(**{**MAE_PRESETS[name], **overrides})
