"""Neural-network layers: masked self-attention, transformer blocks, position embeddings, fast CPU linears."""

from masklab.nn.attention import (
    KVCache,
    MaskedSelfAttention,
    reference_attention,
    sdpa_attention,
)
from masklab.nn.blocks import MLP, Block, DropPath, Encoder, TransformerConfig
from masklab.nn.cpu_linear import (
    Linear,
    cpu_linear_backend,
    get_cpu_linear_backend,
    linear,
    set_cpu_linear_backend,
    use_cpu_linear,
)
from masklab.nn.pos_embed import LearnedPositionEmbedding, sincos_1d, sincos_2d

__all__ = [
    "MLP",
    "Block",
    "DropPath",
    "Encoder",
    "KVCache",
    "LearnedPositionEmbedding",
    "Linear",
    "MaskedSelfAttention",
    "TransformerConfig",
    "cpu_linear_backend",
    "get_cpu_linear_backend",
    "linear",
    "reference_attention",
    "sdpa_attention",
    "set_cpu_linear_backend",
    "sincos_1d",
    "sincos_2d",
    "use_cpu_linear",
]
