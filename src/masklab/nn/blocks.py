"""Transformer building blocks: MLP, stochastic depth, the pre-/post-norm block and a block stack.

Shape legend: ``B`` batch, ``L`` tokens, ``D`` width. The one mask argument, ``blocked``, follows
:mod:`masklab.nn.attention`: an ``AttnMask`` rule or a dense bool tensor, True = may NOT attend (padding folds
into it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import upgrade_mlp_ratio  # noqa: F401  (re-exported: old import path)
from masklab.masks.attention import AttnMask
from masklab.nn.attention import Backend, KVCache, MaskedSelfAttention

Activation = Literal["gelu", "gelu_tanh", "relu"]


@dataclass(frozen=True)
class TransformerConfig:
    """Shape and regularisation of a stack of :class:`Block`.

    ``norm_first=True`` is pre-norm (ViT, GPT-2); ``False`` is post-norm (original BERT).
    ``final_norm`` adds a LayerNorm after the last block (only meaningful for pre-norm).
    ``mlp_hidden`` is the MLP's hidden width as an integer (``None``: ``4 * dim``), so any width a checkpoint
    has (BERT ``intermediate_size``, GPT-2 ``n_inner``) is built exactly.
    """

    dim: int
    depth: int
    heads: int
    mlp_hidden: int | None = None
    dropout: float = 0.0
    attn_dropout: float = 0.0
    drop_path: float = 0.0
    norm_first: bool = True
    norm_eps: float = 1e-6
    activation: Activation = "gelu"
    qkv_bias: bool = True
    final_norm: bool = True

    def __post_init__(self) -> None:
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 4 * self.dim)
        for name in ("dim", "depth", "heads", "mlp_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must be divisible by heads={self.heads}")
        if self.activation not in ("gelu", "gelu_tanh", "relu"):
            raise ValueError(f"activation must be gelu, gelu_tanh or relu, got {self.activation!r}")


def _identity(x: Tensor) -> Tensor:
    return x


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch for whole samples while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        return x * x.new_empty(shape).bernoulli_(keep) / keep


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: Activation = "gelu", dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        if self.activation == "relu":
            h = F.relu(h)
        else:  # "gelu_tanh" is GPT-2's gelu_new
            h = F.gelu(h, approximate="tanh" if self.activation == "gelu_tanh" else "none")
        h = self.fc2(h)
        return self.drop(h) if self.drop.p else h


class Block(nn.Module):
    """One transformer layer: self-attention and MLP, each in a residual branch.

    Pre-norm:  ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.
    Post-norm: ``norm1(x + attn(x))`` then ``norm2(x + mlp(x))``.
    """

    def __init__(self, cfg: TransformerConfig, drop_path: float = 0.0, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.norm1 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.attn = MaskedSelfAttention(
            cfg.dim,
            cfg.heads,
            qkv_bias=cfg.qkv_bias,
            attn_dropout=cfg.attn_dropout,
            proj_dropout=cfg.dropout,
            backend=backend,
        )
        self.norm2 = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        assert cfg.mlp_hidden is not None  # TransformerConfig.__post_init__ fills it in
        self.mlp = MLP(cfg.dim, cfg.mlp_hidden, cfg.activation, cfg.dropout)
        self.drop_path = DropPath(drop_path)

    def forward(
        self,
        x: Tensor,
        *,
        blocked: AttnMask | Tensor | None = None,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``x (B, L, D)`` -> ``(B, L, D)`` (and attention weights ``(B, H, L, Lk)`` if asked)."""
        h = self.norm1(x) if self.norm_first else x
        a = self.attn(h, blocked=blocked, cache=cache, return_weights=return_weights)
        weights: Tensor | None = None
        if return_weights:
            a, weights = a
        # A zero drop-path rate skips the module call: one-token decoding runs this per layer per token.
        drop: Callable[[Tensor], Tensor] = self.drop_path if self.drop_path.p else _identity
        if self.norm_first:
            x = x + drop(a)
            x = x + drop(self.mlp(self.norm2(x)))
        else:
            x = self.norm1(x + drop(a))
            x = self.norm2(x + drop(self.mlp(x)))
        if weights is not None:  # return_weights
            return x, weights
        return x


class Encoder(nn.Module):
    """A stack of :class:`Block` with linearly increasing drop-path and an optional final LayerNorm.

    Used as the encoder (bidirectional) and, with ``blocked=causal()``, as a decoder-only stack.
    """

    def __init__(self, cfg: TransformerConfig, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.cfg = cfg
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        self.blocks = nn.ModuleList(Block(cfg, r, backend) for r in rates)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps) if cfg.norm_first and cfg.final_norm else nn.Identity()
        self.grad_checkpointing = False

    @property
    def layers(self) -> list[Block]:
        """The blocks in order, typed (iterating the ``nn.ModuleList`` ``blocks`` gives plain ``nn.Module``)."""
        return cast("list[Block]", list(self.blocks))

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of storing them (Chen et al. 2016):
        activation memory drops from O(depth) blocks to one, for about a third more compute."""
        self.grad_checkpointing = enabled

    def set_backend(self, backend: Backend) -> None:
        """Switch every layer between the fused (``"sdpa"``) and reference attention paths."""
        for block in self.layers:
            block.attn.backend = backend

    def forward(
        self,
        x: Tensor,
        *,
        blocked: AttnMask | Tensor | None = None,
        caches: list[KVCache] | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``x (B, L, D)`` -> ``(B, L, D)``; with ``return_weights`` also one ``(B, H, L, Lk)`` per layer.

        ``blocked``: the one mask argument of :class:`~masklab.nn.attention.MaskedSelfAttention`, shared by
        every layer. ``caches``: one :class:`KVCache` per layer (incremental decoding).
        """
        if caches is not None and len(caches) != len(self.blocks):
            raise ValueError(f"caches has {len(caches)} entries for {len(self.blocks)} layers")
        all_weights: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            run: Callable[..., Any] = block
            if self.grad_checkpointing and self.training and torch.is_grad_enabled() and caches is None:
                run = functools.partial(torch.utils.checkpoint.checkpoint, block, use_reentrant=False)
            out = run(x, blocked=blocked, cache=None if caches is None else caches[i], return_weights=return_weights)
            if return_weights:
                x, w = out
                all_weights.append(w)
            else:
                x = out
        x = self.norm(x)
        return (x, all_weights) if return_weights else x
