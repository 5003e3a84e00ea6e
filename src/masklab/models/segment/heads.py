"""Pixel decoders of a segmentation head: patch-token features ``(B, Dt, gh, gw)`` + the image -> logits.

Two decoders (``SegmentConfig.decoder``):

- ``"pixel-mlp"``: the token map is upsampled bilinearly to the image size and a two-layer 1x1-conv MLP sees
  [features, the pixel's own colour]: each pixel is classified from its own colour and smooth token context.
- ``"unet"``: a small U-Net around the token grid. A conv stem encodes the image at full, 1/2 and 1/4
  resolution; at the token grid (1/p of the image, p = 4) the token features are concatenated with the stem's
  deepest map, then upsampled in stages (x2 each), each stage concatenated with the stem's skip at that
  resolution and refined by two 3x3 convs (BatchNorm + GELU), down to full-resolution logits.
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

DECODERS = ("pixel-mlp", "conv", "unet")


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


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (``stride``) + BatchNorm + GELU, then 3x3 conv + BatchNorm + GELU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU(),
    )  # fmt: skip


class UNetDecoder(nn.Module):
    """Conv stem at 1, 1/2, ..., 1/p resolution (widths ``width * 2**s``, capped at ``4 * width``); token
    features join at the token grid; x2 upsampling stages with skips back to full resolution.

    ``levels`` = log2(p) stages (p = patch side, a power of two)."""

    def __init__(self, token_dim: int, channels: int, width: int, num_classes: int, patch: int) -> None:
        super().__init__()
        levels = patch.bit_length() - 1
        if patch != 1 << levels:
            raise ValueError(f"the unet decoder needs a power-of-two patch side, got {patch}")
        widths = [width * min(2**s, 4) for s in range(levels + 1)]  # full res ... token grid
        self.stem = nn.ModuleList(
            [_block(channels, widths[0])] + [_block(widths[s - 1], widths[s], stride=2) for s in range(1, levels + 1)]
        )
        self.bottom = _block(widths[-1] + token_dim, widths[-1])
        self.up = nn.ModuleList([_block(widths[s + 1] + widths[s], widths[s]) for s in reversed(range(levels))])
        self.logits = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, features: Tensor, image: Tensor) -> Tensor:
        """``features (B, Dt, gh, gw)``, normalised ``image (B, C, H, W)`` -> logits ``(B, K, H, W)``."""
        skips = []
        x = image
        for stage in self.stem:
            x = stage(x)
            skips.append(x)  # (B, w_s, H / 2**s, W / 2**s)
        x = self.bottom(torch.cat([skips.pop(), features], dim=1))  # (B, w_L, gh, gw)
        for stage in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
        return self.logits(x)  # (B, K, H, W)


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
