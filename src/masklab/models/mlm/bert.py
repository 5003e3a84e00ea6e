"""BERT encoder (Devlin et al. 2019) on masklab.nn.

Shape legend: ``B`` batch, ``L`` tokens, ``D`` width, ``V`` vocabulary. ``padding: bool (B, L)`` True = padded
token (attended by no query; converted to SDPA's polarity inside :mod:`masklab.nn.attention`).

Layout: token + learned position + token-type embeddings -> LayerNorm -> dropout -> :class:`masklab.nn.Encoder`
(post-norm like BERT, or pre-norm with a final LayerNorm). Hugging Face weights map onto it in
:mod:`masklab.interop.hf.bert`; named sizes are in :data:`masklab.models.mlm.config.PRESETS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from masklab.core.contract import ModelConfig
from masklab.masks.convert import padding_to_blocked
from masklab.nn import Encoder, LearnedPositionEmbedding, TransformerConfig
from masklab.nn.attention import Backend


@dataclass(frozen=True)
class BertConfig(ModelConfig):
    """Shape of a BERT encoder. ``intermediate`` (the MLP's integer hidden width) defaults to ``4 * dim``;
    ``norm_first=False`` is BERT's post-norm, ``True`` pre-norm (Xiong et al. 2020: trains stably without
    warmup, no HF equivalent). ``pad_id=None``: no padding row in the word embeddings (its gradient is not
    frozen). ``positions``: ``"absolute"`` reads position ``t`` at index ``t`` (BERT); ``"roberta"`` reads
    ``pad_id + 1 + (number of real tokens before t)`` and ``pad_id`` at padded tokens (fairseq's
    ``make_positions``, which RoBERTa checkpoints were trained with).
    """

    vocab_size: int
    dim: int = 256
    depth: int = 4
    heads: int = 4
    intermediate: int | None = None
    max_len: int = 512
    type_vocab_size: int = 2
    pad_id: int | None = 0
    norm_first: bool = False
    norm_eps: float = 1e-12
    dropout: float = 0.1
    attn_dropout: float = 0.1
    positions: Literal["absolute", "roberta"] = "absolute"

    def __post_init__(self) -> None:
        if self.intermediate is None:
            object.__setattr__(self, "intermediate", 4 * self.dim)
        for name in ("vocab_size", "dim", "depth", "heads", "intermediate", "max_len", "type_vocab_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BertConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"BertConfig.dim={self.dim} must be divisible by heads={self.heads}")
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_id={self.pad_id} is outside the vocabulary of {self.vocab_size}")
        if self.positions not in ("absolute", "roberta"):
            raise ValueError(f"BertConfig.positions must be 'absolute' or 'roberta', got {self.positions!r}")
        if self.positions == "roberta" and self.pad_id is None:
            raise ValueError("BertConfig.positions='roberta' counts positions after pad_id: pad_id cannot be None")
        if self.max_tokens < 1:
            raise ValueError(f"BertConfig.max_len={self.max_len} leaves no position after pad_id={self.pad_id}")

    @property
    def max_tokens(self) -> int:
        """The longest sequence the position table can read (RoBERTa's table starts after ``pad_id``)."""
        if self.positions == "roberta" and self.pad_id is not None:  # __post_init__ refuses roberta without pad_id
            return self.max_len - (self.pad_id + 1)
        return self.max_len

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_hidden=self.intermediate,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            norm_first=self.norm_first,
            norm_eps=self.norm_eps,
            activation="gelu",  # BERT's exact erf GELU (HF "gelu")
            final_norm=self.norm_first,
        )


class BertEmbeddings(nn.Module):
    """``ids (B, L)`` -> LayerNorm(word + position + token type) -> dropout -> ``(B, L, D)``."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        # padding_idx keeps the [PAD] row's input gradient at zero, as in BERT / HF.
        self.word = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_id)
        self.position = LearnedPositionEmbedding(cfg.max_len, cfg.dim)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.dim)
        self.positions, self.pad_id = cfg.positions, cfg.pad_id
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        if self.positions == "roberta":
            assert self.pad_id is not None  # BertConfig refuses positions="roberta" without pad_id
            real = (ids != self.pad_id).long()  # (B, L)
            x = self.word(ids) + self.position.weight[real.cumsum(1) * real + self.pad_id]  # (B, L, D)
        else:
            x = self.word(ids) + self.position(ids.shape[1])  # (B, L, D)
        # Segment 0 everywhere unless given, like HF; adding row 0 keeps imported weights exact.
        x = x + (self.token_type.weight[0] if token_type_ids is None else self.token_type(token_type_ids))
        return self.drop(self.norm(x))


class Bert(nn.Module):
    """The BERT encoder: ``ids (B, L)`` -> hidden states ``(B, L, D)``."""

    def __init__(self, cfg: BertConfig, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = Encoder(cfg.transformer(), backend)

    def forward(self, ids: Tensor, *, padding: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        """Args: ``ids`` long (B, L); ``padding`` bool (B, L), True = padded (None: no padding);
        ``token_type_ids`` long (B, L) or None. Returns ``(B, L, D)``."""
        if ids.shape[1] > self.config.max_tokens:
            raise ValueError(
                f"sequence of {ids.shape[1]} tokens exceeds max_len={self.config.max_len} "
                f"({self.config.max_tokens} tokens)"
            )
        if padding is not None and not torch.compiler.is_compiling() and not bool(padding.any()):
            padding = None  # eager only: an all-False mask would keep SDPA off its fastest (mask-free) kernel
        blocked = None if padding is None else padding_to_blocked(padding)  # (B, 1, 1, L)
        return self.encoder(self.embeddings(ids, token_type_ids), blocked=blocked)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation (``initializer_range`` 0.02): normal weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, LearnedPositionEmbedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
