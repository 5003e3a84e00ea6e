"""A series classifier: the :class:`PatchTST` encoder (pretrained or not) with a linear head on its pooled
features (PatchTST's classification head: mean over real patches, channels concatenated).

Shape legend: ``B`` batch, ``C`` channels, ``D`` width, ``K`` classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput
from masklab.data.series import SeriesBatch
from masklab.models.series.config import SeriesClassifierConfig, SeriesConfig, classifier_from_preset
from masklab.models.series.model import PatchTST


class SeriesClassifier(nn.Module):
    """``PatchTST.embed`` -> standardise -> dropout -> ``Linear(C * (D + 2), K)``; trained with cross-entropy.

    The standardisation (``feature_mean``, ``feature_scale``: buffers, saved with the weights, identity until
    :meth:`set_head` is called) puts features of very different units (pooled tokens, log scales, levels) on
    one footing, as a linear probe does; :meth:`set_head` starts fine-tuning from a fitted probe (LP-FT,
    Kumar et al. 2022)."""

    kind: ClassVar[str] = "series-classifier"
    feature_mean: Tensor
    feature_scale: Tensor

    def __init__(self, series: SeriesConfig, num_classes: int, head_dropout: float = 0.0) -> None:
        super().__init__()
        self.config = SeriesClassifierConfig(series, num_classes, head_dropout)
        self.num_classes = self.config.num_classes
        self.head_dropout = self.config.head_dropout
        self.backbone = PatchTST(series)
        self.drop = nn.Dropout(self.head_dropout)
        self.classifier = Linear(self.backbone.embed_dim, self.num_classes)
        self.register_buffer("feature_mean", torch.zeros(self.backbone.embed_dim))
        self.register_buffer("feature_scale", torch.ones(self.backbone.embed_dim))

    @classmethod
    def from_config(cls, config: SeriesClassifierConfig | Mapping[str, Any]) -> SeriesClassifier:
        """An untrained classifier from its config or the dict a run saved (``config.json["model"]``)."""
        built = SeriesClassifierConfig.from_dict(config)
        return cls(built.series, built.num_classes, built.head_dropout)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SeriesClassifier:
        """An untrained classifier on series preset ``name``: ``channels`` and ``num_classes`` are required,
        ``head_dropout`` and the series overrides are optional."""
        return cls.from_config(classifier_from_preset(name, **overrides))

    @torch.no_grad()
    def set_head(self, mean: Tensor, scale: Tensor, weight: Tensor, bias: Tensor) -> None:
        """Feature standardisation ``(F,)`` x2 and head ``weight (K, F)``, ``bias (K,)`` (e.g. from a probe)."""
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(scale)
        self.classifier.weight.copy_(weight)
        self.classifier.bias.copy_(bias)

    def embed(self, batch: SeriesBatch) -> Tensor:
        """The encoder's features ``(B, C * (D + 2))`` (:meth:`PatchTST.embed`; no patch hidden)."""
        return self.backbone.embed(batch)

    def logits(self, batch: SeriesBatch) -> Tensor:
        """``(B, K)`` class scores."""
        features = (self.embed(batch) - self.feature_mean) / self.feature_scale
        return self.classifier(self.drop(features))

    def training_loss(self, batch: SeriesBatch, generator: torch.Generator) -> LossOutput:
        """``fit`` hook: cross-entropy on ``batch.labels (B,)``. Fine-tuning hides no patch, so nothing is
        drawn (``generator`` is unused; head dropout uses torch's global generator)."""
        if batch.labels is None:
            raise ValueError("fine-tuning a series classifier needs labelled series")
        logits = self.logits(batch)
        loss = F.cross_entropy(logits, batch.labels)
        accuracy = (logits.argmax(dim=-1) == batch.labels).float().mean()
        return LossOutput(loss, {"accuracy": accuracy.detach()})
