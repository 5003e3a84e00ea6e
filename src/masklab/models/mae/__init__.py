"""Masked autoencoder for images (MAE; SimMIM variant; classifier fine-tuning) and its learned masker."""

from masklab.models.mae.config import MASK_KINDS, PRESETS, TRAIN_DEFAULTS, MAEConfig
from masklab.models.mae.model import MAE, MAEOutput

__all__ = ["MAE", "MASK_KINDS", "PRESETS", "TRAIN_DEFAULTS", "MAEConfig", "MAEOutput"]
