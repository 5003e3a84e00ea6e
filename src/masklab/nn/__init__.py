"""Neural-network layers: masked self-attention, transformer blocks, position embeddings."""

from masklab.nn.attention import (
    KVCache,
    MaskedSelfAttention,
    merge_masks,
    reference_attention,
    sdpa_attention,
)
from masklab.nn.blocks import MLP, Block, DropPath, Encoder, TransformerConfig
from masklab.nn.pos_embed import LearnedPositionEmbedding, sincos_1d, sincos_2d

__all__ = [
    "MLP",
    "Block",
    "DropPath",
    "Encoder",
    "KVCache",
    "LearnedPositionEmbedding",
    "MaskedSelfAttention",
    "TransformerConfig",
    "merge_masks",
    "reference_attention",
    "sdpa_attention",
    "sincos_1d",
    "sincos_2d",
]
