"""Position embeddings: fixed sin-cos (1-D, and MAE's 2-D) and learned.

Fixed tables are computed in float64 and returned as float32 so they match MAE/HF ViTMAE bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def sincos_1d_from_positions(dim: int, positions: Tensor) -> Tensor:
    """``positions (N,)`` -> ``(N, dim)`` float64: ``[sin(p·ω), cos(p·ω)]``, ``ω_i = 10000^(-2i/dim)``."""
    if dim % 2:
        raise ValueError(f"dim must be even for sin-cos embeddings, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = positions.to(torch.float64).reshape(-1, 1) * omega[None, :]  # (N, dim/2)
    return torch.cat([out.sin(), out.cos()], dim=1)


def sincos_1d(length: int, dim: int) -> Tensor:
    """Fixed 1-D table ``(length, dim)`` float32 for positions ``0..length-1``."""
    return sincos_1d_from_positions(dim, torch.arange(length)).float()


def sincos_2d(grid_h: int, grid_w: int, dim: int, *, cls_token: bool = False) -> Tensor:
    """MAE's fixed 2-D table ``(grid_h * grid_w [+1], dim)`` float32, row-major patch order.

    As in MAE's ``get_2d_sincos_pos_embed`` the first half of the channels encodes the column (w) and the
    second half the row (h); with ``cls_token`` a zero row is prepended.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for 2-D sin-cos embeddings, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")  # (gh, gw) each
    emb = torch.cat([sincos_1d_from_positions(dim // 2, cols), sincos_1d_from_positions(dim // 2, rows)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


class LearnedPositionEmbedding(nn.Module):
    """Trainable table of ``max_len`` positions (BERT, GPT-2)."""

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, length: int, offset: int = 0) -> Tensor:
        """Embeddings of positions ``offset .. offset+length-1`` -> ``(length, dim)``."""
        if offset + length > self.max_len:
            raise ValueError(f"sequence of {offset + length} positions exceeds max_len={self.max_len}")
        return self.weight[offset : offset + length]
