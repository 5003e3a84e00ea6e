"""Masks as first-class objects, one convention everywhere (True = hidden / padded / blocked).

- ``masked: bool (B, L)``          True = hidden, to be predicted (a 1 in a mask matrix = masking applied)
- ``padding: bool (B, L)``         True = padded position, not a real token
- ``blocked: bool (..., Lq, Lk)``  True = query may NOT attend to key

Modules: :mod:`~masklab.masks.attention` (causal / sliding / prefix / document / padding rules and their
``|``/``&`` algebra), :mod:`~masklab.masks.convert` (the only place other polarities appear),
:mod:`~masklab.masks.ops` (masked reductions, softmax, loss, pooling), :mod:`~masklab.masks.generators`
(random, Bernoulli, block, span, whole-word, grid).
"""

from masklab.masks.attention import (
    AttnMask,
    causal,
    document,
    full,
    key_padding,
    prefix_lm,
    sliding_window,
)
from masklab.masks.convert import (
    from_additive,
    from_hf_attention_mask,
    from_key_padding_mask,
    from_mha_attn_mask,
    from_sdpa,
    padding_to_blocked,
    sdpa_safe,
    to_additive,
    to_block_mask,
    to_hf_attention_mask,
    to_key_padding_mask,
    to_mha_attn_mask,
    to_sdpa,
)
from masklab.masks.generators import (
    MASK_GENERATORS,
    MaskSample,
    bernoulli_masking,
    block_masking,
    grid_masking,
    ids_from_masked,
    random_masking,
    span_masking,
    whole_word_masking,
)
from masklab.masks.ops import (
    apply_mask,
    first_token,
    last_token,
    lengths_from_padding,
    masked_count,
    masked_loss,
    masked_max,
    masked_mean,
    masked_normalize,
    masked_softmax,
    masked_sum,
    max_pool,
    mean_pool,
    padding_from_lengths,
)

__all__ = [
    "MASK_GENERATORS",
    "AttnMask",
    "MaskSample",
    "apply_mask",
    "bernoulli_masking",
    "block_masking",
    "causal",
    "document",
    "first_token",
    "from_additive",
    "from_hf_attention_mask",
    "from_key_padding_mask",
    "from_mha_attn_mask",
    "from_sdpa",
    "full",
    "grid_masking",
    "ids_from_masked",
    "key_padding",
    "last_token",
    "lengths_from_padding",
    "masked_count",
    "masked_loss",
    "masked_max",
    "masked_mean",
    "masked_normalize",
    "masked_softmax",
    "masked_sum",
    "max_pool",
    "mean_pool",
    "padding_from_lengths",
    "padding_to_blocked",
    "prefix_lm",
    "random_masking",
    "sdpa_safe",
    "sliding_window",
    "span_masking",
    "to_additive",
    "to_block_mask",
    "to_hf_attention_mask",
    "to_key_padding_mask",
    "to_mha_attn_mask",
    "to_sdpa",
    "whole_word_masking",
]
