"""Segmentation heads on MAE encoders: per-pixel subject/background (or K-class) logits from all patches."""

from masklab.models.segment.config import PRESETS, SegmentConfig
from masklab.models.segment.model import Segmenter

__all__ = ["PRESETS", "SegmentConfig", "Segmenter"]
