"""Masked time-series modelling (PatchTST-style) on variable-length series with padded time steps."""

from masklab.models.series.classifier import SeriesClassifier
from masklab.models.series.config import PRESETS, SeriesClassifierConfig, SeriesConfig, from_preset
from masklab.models.series.model import PatchTST, SeriesInput, SeriesOutput

__all__ = [
    "PRESETS",
    "PatchTST",
    "SeriesClassifier",
    "SeriesClassifierConfig",
    "SeriesConfig",
    "SeriesInput",
    "SeriesOutput",
    "from_preset",
]
