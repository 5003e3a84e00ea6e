"""A series classifier: the :class:`PatchTST` encoder (pretrained or not) with a linear head on its pooled
features (PatchTST's classification head: mean over real patches, channels concatenated).

Shape legend: ``B`` batch, ``C`` channels, ``D`` width, ``K`` classes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput
from masklab.data.series import SeriesBatch
from masklab.models.series.config import SeriesConfig
from masklab.models.series.model import PatchTST


class SeriesClassifier(nn.Module):
    """``PatchTST.embed`` -> standardise -> dropout -> ``Linear(C * (D + 2), K)``; trained with cross-entropy.

    The standardisation (``feature_mean``, ``feature_scale``: buffers, saved with the weights, identity until
    :meth:`set_head` is called) puts features of very different units (pooled tokens, log scales, levels) on
    one footing, as a linear probe does; :meth:`set_head` starts fine-tuning from a fitted probe (LP-FT,
    Kumar et al. 2022)."""

    kind = "series-classifier"
    feature_mean: Tensor
    feature_scale: Tensor

    def __init__(self, config: SeriesConfig, num_classes: int, head_dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.head_dropout = head_dropout
        self.backbone = PatchTST(config)
        self.drop = nn.Dropout(head_dropout)
        self.classifier = Linear(self.backbone.embed_dim, num_classes)
        self.register_buffer("feature_mean", torch.zeros(self.backbone.embed_dim))
        self.register_buffer("feature_scale", torch.ones(self.backbone.embed_dim))

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> SeriesClassifier:
        return cls(SeriesConfig.from_dict(values["series"]), int(values["num_classes"]),
                   float(values.get("head_dropout", 0.0)))  # fmt: skip

    def model_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "series": self.config.to_dict(), "num_classes": self.num_classes,
                "head_dropout": self.head_dropout}  # fmt: skip

    @torch.no_grad()
    def set_head(self, mean: Tensor, scale: Tensor, weight: Tensor, bias: Tensor) -> None:
        """Feature standardisation ``(F,)`` x2 and head ``weight (K, F)``, ``bias (K,)`` (e.g. from a probe)."""
        self.feature_mean.copy_(mean)
        self.feature_scale.copy_(scale)
        self.classifier.weight.copy_(weight)
        self.classifier.bias.copy_(bias)

    def logits(self, batch: SeriesBatch) -> Tensor:
        """``(B, K)`` class scores."""
        features = (self.backbone.embed(batch) - self.feature_mean) / self.feature_scale
        return self.classifier(self.drop(features))

    def training_loss(self, batch: SeriesBatch, generator: torch.Generator) -> LossOutput:
        if batch.labels is None:
            raise ValueError("fine-tuning a series classifier needs labelled series")
        logits = self.logits(batch)
        loss = F.cross_entropy(logits, batch.labels)
        accuracy = (logits.argmax(dim=-1) == batch.labels).float().mean()
        return LossOutput(loss, {"accuracy": accuracy.detach()})
