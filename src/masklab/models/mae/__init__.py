"""Masked autoencoder for images (MAE; SimMIM variant; classifier fine-tuning) and its learned masker."""

from masklab.models.mae.model import MAE, MASK_KINDS, MAEConfig, MAEOutput

__all__ = ["MAE", "MASK_KINDS", "MAEConfig", "MAEOutput"]
