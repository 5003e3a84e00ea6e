"""A light segmentation head on an MAE encoder: patch tokens -> a pixel decoder -> per-pixel logits.

The encoder sees every patch, in training too: the segmenter hides nothing (no mask generator; it learns from
per-pixel labels, and the only randomness of a step is the data's flips), so it resolves no mask kind through
:mod:`masklab.masks.strategies` and its ``training_loss`` draws nothing from the generator (and has no
``draw``). The outputs of its last
``config.layers`` blocks are layer-normalised, concatenated and projected to ``Dh`` features per token; the
``(gh, gw)`` feature map goes to a pixel decoder (:mod:`masklab.models.segment.heads`: full-resolution convs
of the image, or a per-pixel MLP) that gives ``K`` logits per pixel. The loss is the per-pixel cross-entropy
plus, with ``config.dice_weight``, a soft Dice term on the subject classes.

Shape legend: ``B`` batch, ``C`` channels, ``H``/``W`` image size, ``L`` patches, ``D`` encoder width,
``K`` classes (0 = background; binary = 2), ``p`` patch side. Targets ``(B, H, W)`` are class indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklab.core.contract import LossOutput
from masklab.models.mae import MAE
from masklab.models.segment.config import SegmentConfig
from masklab.models.segment.heads import ConvDecoder, PixelMLPDecoder, UNetDecoder, soft_dice_loss


def foreground_iou(pred: Tensor, target: Tensor) -> Tensor:
    """Pooled IoU of the non-background pixels: ``pred``/``target (B, H, W)`` class indices -> 0-d tensor.

    Both empty gives 1 (nothing to find, nothing found)."""
    p, t = pred > 0, target > 0
    union = (p | t).sum()
    return torch.where(union > 0, (p & t).sum() / union.clamp_min(1), torch.ones((), device=pred.device))


class Segmenter(nn.Module):
    """MAE encoder (all patches) + a pixel decoder -> per-pixel logits ``(B, K, H, W)``."""

    kind: ClassVar[str] = "segment"

    def __init__(self, config: SegmentConfig) -> None:
        super().__init__()
        self.config = config
        self.mae = MAE(config.encoder_config())
        cfg = self.mae.config
        self.proj = nn.Linear(config.layers * cfg.dim, config.head_dim)  # after a per-layer LayerNorm
        self.decoder: nn.Module
        if config.decoder == "unet":
            self.decoder = UNetDecoder(config.head_dim, cfg.channels, config.pixel_features, config.num_classes,
                                       cfg.patch_size)  # fmt: skip
        elif config.decoder == "conv":
            self.decoder = ConvDecoder(config.head_dim, cfg.channels, config.pixel_features, config.pixel_dim,
                                       config.num_classes)  # fmt: skip
        else:
            self.decoder = PixelMLPDecoder(config.head_dim, cfg.channels, config.pixel_dim, config.num_classes)
        self.mae.requires_grad_(not config.freeze_encoder)

    @classmethod
    def from_config(cls, config: SegmentConfig | Mapping[str, Any]) -> Segmenter:
        """An untrained segmenter from its config or the dict a run saved (``config.json["model"]``)."""
        return cls(SegmentConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Segmenter:
        """An untrained segmenter of preset ``name`` (:data:`~masklab.models.segment.config.PRESETS`) with
        ``overrides``; ``encoder`` (the MAE's config or its dict) is required."""
        return cls(SegmentConfig.from_preset(name, **overrides))

    def load_encoder(self, mae: MAE) -> Segmenter:
        """Copy a pretrained MAE's weights into the encoder (configs must agree); returns ``self``."""
        if mae.config.to_dict() != self.mae.config.to_dict():
            raise ValueError("the pretrained MAE's config differs from this segmenter's encoder config")
        self.mae.load_state_dict(mae.state_dict())
        return self

    def lr_scale(self, name: str) -> float:
        """Learning-rate factor of parameter ``name`` (``config.layer_decay``; read by
        :func:`masklab.train.optim.param_groups`): 1 for the head and the encoder's final norm,
        ``layer_decay ** (depth - i)`` for encoder block ``i``, ``layer_decay ** (depth + 1)`` for the patch
        embedding, position and CLS parameters (the MAE's own decoder gets no gradient)."""
        decay, depth = self.config.layer_decay, self.mae.config.depth
        if decay == 1.0 or not name.startswith("mae.") or name.startswith("mae.encoder.norm"):
            return 1.0
        parts = name.split(".")
        if parts[1:3] == ["encoder", "blocks"]:
            return decay ** (depth - int(parts[3]))
        return decay ** (depth + 1)

    def train(self, mode: bool = True) -> Segmenter:
        super().train(mode)
        if self.config.freeze_encoder:
            self.mae.eval()  # a probe never changes the encoder, drop-path included
        return self

    @property
    def image_size(self) -> tuple[int, int]:
        return self.mae.config.image_size

    def encode(self, images: Tensor) -> Tensor:
        """Patch tokens ``(B, L, layers * D)`` of ``images (B, C, H, W)`` in [0, 1]: the outputs of the last
        ``config.layers`` encoder blocks (the last one after the encoder's final norm), every patch visible,
        CLS dropped."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_encoder):
            if self.config.layers == 1:
                return self.mae.encode(images)[:, 1:]
            self.mae.check_images(images)
            encoder = self.mae.encoder
            x = self.mae.encoder_input(self.mae.normalize(images))  # (B, 1 + L, D)
            outputs = []
            for block in encoder.blocks:
                x = block(x)
                outputs.append(x)
            outputs[-1] = encoder.norm(outputs[-1])
            return torch.cat(outputs[-self.config.layers :], dim=-1)[:, 1:]  # (B, L, layers * D)

    def embed(self, images: Tensor) -> Tensor:
        """Pooled encoder features ``(B, D)`` of ``images (B, C, H, W)`` in [0, 1] (:meth:`MAE.embed`)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_encoder):
            return self.mae.embed(images)

    def forward(self, images: Tensor, tokens: Tensor | None = None) -> Tensor:
        """``images (B, C, H, W)`` in [0, 1] at the encoder's size -> logits ``(B, K, H, W)``.

        ``tokens (B, L, layers * D)``: :meth:`encode`'s output computed beforehand (a frozen encoder's tokens do not
        change, so a probe can cache them)."""
        cfg = self.mae.config
        if tokens is None:
            tokens = self.encode(images)
        B, L, _ = tokens.shape
        gh, gw = cfg.grid
        normed = F.layer_norm(tokens.reshape(B, L, self.config.layers, cfg.dim), (cfg.dim,))  # per layer, no affine
        features = self.proj(normed.flatten(2)).transpose(1, 2).reshape(B, -1, gh, gw)  # (B, Dh, gh, gw)
        return self.decoder(features, self.mae.normalize(images))  # (B, K, H, W)

    def training_loss(self, batch: Any, generator: torch.Generator) -> LossOutput:
        """``fit`` hook: ``batch.images (B, C, H, W)``, ``batch.targets (B, H, W)`` long (and, for a frozen
        encoder, optionally cached ``batch.tokens (B, L, layers * D)``) -> per-pixel cross-entropy (+ soft Dice).
        Nothing is hidden or drawn (``generator`` is unused), so a compiled step needs no ``draw``."""
        targets = batch.targets
        if targets.shape != (batch.images.shape[0], *batch.images.shape[2:]):
            raise ValueError(f"targets {tuple(targets.shape)} do not match images {tuple(batch.images.shape)}")
        tokens = getattr(batch, "tokens", None)
        if tokens is not None and not self.config.freeze_encoder:
            raise ValueError("cached tokens only apply to a frozen encoder; this segmenter fine-tunes it")
        logits = self(batch.images, tokens)  # (B, K, H, W)
        loss = F.cross_entropy(logits, targets)
        if self.config.dice_weight > 0:
            loss = loss + self.config.dice_weight * soft_dice_loss(logits, targets)
        pred = logits.detach().argmax(1)  # (B, H, W)
        metrics = {"pixel_accuracy": (pred == targets).float().mean(), "iou": foreground_iou(pred, targets)}
        return LossOutput(loss, metrics)

    @torch.no_grad()
    def predict(self, images: Tensor, box: tuple[int, int, int, int] | None = None) -> Tensor:
        """Class index per pixel ``(B, H, W)`` (0 = background). ``box = (x0, y0, x1, y1)`` in pixels keeps only
        predictions inside the box (a prompt that picks one subject among several)."""
        pred = self(images).argmax(1)  # (B, H, W)
        if box is not None:
            x0, y0, x1, y1 = box
            keep = torch.zeros_like(pred, dtype=torch.bool)
            keep[:, y0:y1, x0:x1] = True
            pred = torch.where(keep, pred, torch.zeros_like(pred))
        return pred
