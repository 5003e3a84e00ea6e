"""Pixel decoders of a segmentation head: patch-token features ``(B, Dt, gh, gw)`` + the image -> logits.

Two decoders (``SegmentConfig.decoder``):

- ``"pixel-mlp"``: the token map is upsampled bilinearly to the image size and a two-layer 1x1-conv MLP sees
  [features, the pixel's own colour]: each pixel is classified from its own colour and smooth token context.
- ``"conv"``: a light full-resolution decoder. The token map gets one 3x3 conv at the token grid (context
  between neighbouring patches), is upsampled bilinearly, and is concatenated with a few 3x3 conv features of
  the raw image at full resolution (edges and local texture, which 4x4 patch tokens blur); two 3x3 convs and
  a 1x1 conv give the logits. The encoder says *which* region is subject, the pixel convs say *where* its
  boundary runs.

Shape legend: ``B`` batch, ``C`` image channels, ``H``/``W`` image size, ``gh``/``gw`` token grid, ``Dt`` token
features, ``K`` classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DECODERS = ("pixel-mlp", "conv")


class PixelMLPDecoder(nn.Module):
    """Bilinear upsampling + a per-pixel MLP on [token features, normalised colour]."""

    def __init__(self, token_dim: int, channels: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(token_dim + channels, width, 1), nn.GELU(), nn.Conv2d(width, num_classes, 1))

    def forward(self, features: Tensor, image: Tensor) -> Tensor:
        """``features (B, Dt, gh, gw)``, normalised ``image (B, C, H, W)`` -> logits ``(B, K, H, W)``."""
        up = F.interpolate(features, size=image.shape[-2:], mode="bilinear", align_corners=False)  # (B, Dt, H, W)
        return self.mlp(torch.cat([up, image], dim=1))


class ConvDecoder(nn.Module):
    """Token-grid conv -> bilinear upsampling, concatenated with full-resolution pixel convs -> 3x3 convs."""

    def __init__(self, token_dim: int, channels: int, pixel_features: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.context = nn.Sequential(nn.Conv2d(token_dim, token_dim, 3, padding=1), nn.GELU())
        self.pixels = nn.Sequential(
            nn.Conv2d(channels, pixel_features, 3, padding=1), nn.GELU(),
            nn.Conv2d(pixel_features, pixel_features, 3, padding=1), nn.GELU(),
        )  # fmt: skip
        self.fuse = nn.Sequential(
            nn.Conv2d(token_dim + pixel_features, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, num_classes, 1),
        )  # fmt: skip

    def forward(self, features: Tensor, image: Tensor) -> Tensor:
        """``features (B, Dt, gh, gw)``, normalised ``image (B, C, H, W)`` -> logits ``(B, K, H, W)``."""
        context = features + self.context(features)  # (B, Dt, gh, gw)
        up = F.interpolate(context, size=image.shape[-2:], mode="bilinear", align_corners=False)  # (B, Dt, H, W)
        return self.fuse(torch.cat([up, self.pixels(image)], dim=1))


def soft_dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """``1 - Dice`` of the softmax probabilities of every non-background class, pooled over the batch and
    averaged over classes: ``logits (B, K, H, W)``, ``targets (B, H, W)`` class indices -> 0-d tensor.

    Pooled over the batch (as the metric is), it weighs subject pixels against the subject's size rather
    than against the whole image, which offsets the background's majority in the cross-entropy."""
    probs = logits.float().softmax(1)[:, 1:]  # (B, K-1, H, W)
    onehot = F.one_hot(targets, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(probs.dtype)  # (B, K-1, H, W)
    inter = (probs * onehot).sum((0, 2, 3))  # (K-1,)
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return (1 - (2 * inter + 1) / (total + 1)).mean()
