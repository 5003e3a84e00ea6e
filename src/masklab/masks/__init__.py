"""Masks as first-class objects, one convention everywhere (True = hidden / padded / blocked).

- ``masked: bool (B, L)``          True = hidden, to be predicted (a 1 in a mask matrix = masking applied)
- ``padding: bool (B, L)``         True = padded position, not a real token
- ``blocked: bool (..., Lq, Lk)``  True = query may NOT attend to key

Modules: :mod:`~masklab.masks.attention` (causal / sliding / prefix / document / padding rules and their
``|``/``&`` algebra), :mod:`~masklab.masks.convert` (the only place other polarities appear),
:mod:`~masklab.masks.ops` (reductions over visible elements, softmax, the loss over masked ones, pooling),
:mod:`~masklab.masks.generators` (random, Bernoulli, grid), :mod:`~masklab.masks.regions` (block, span,
whole-word) and :mod:`~masklab.masks.strategies`, the registry every model resolves its mask kind through.
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
    MaskSample,
    bernoulli_masking,
    grid_cell,
    grid_masking,
    ids_from_masked,
    jittered_masking,
    random_masking,
)
from masklab.masks.ops import (
    apply_mask,
    first_token,
    last_token,
    lengths_from_padding,
    loss_on_masked,
    max_pool,
    mean_pool,
    padding_from_lengths,
    visible_count,
    visible_max,
    visible_mean,
    visible_normalize,
    visible_softmax,
    visible_sum,
)
from masklab.masks.regions import block_masking, span_masking, whole_word_masking, word_span_masking
from masklab.masks.strategies import STRATEGIES, MaskRequest, MaskStrategy, draw_mask, resolve

__all__ = [
    "STRATEGIES",
    "AttnMask",
    "MaskRequest",
    "MaskSample",
    "MaskStrategy",
    "apply_mask",
    "bernoulli_masking",
    "block_masking",
    "causal",
    "document",
    "draw_mask",
    "first_token",
    "from_additive",
    "from_hf_attention_mask",
    "from_key_padding_mask",
    "from_mha_attn_mask",
    "from_sdpa",
    "full",
    "grid_cell",
    "grid_masking",
    "ids_from_masked",
    "jittered_masking",
    "key_padding",
    "last_token",
    "lengths_from_padding",
    "loss_on_masked",
    "max_pool",
    "mean_pool",
    "padding_from_lengths",
    "padding_to_blocked",
    "prefix_lm",
    "random_masking",
    "resolve",
    "sdpa_safe",
    "sliding_window",
    "span_masking",
    "to_additive",
    "to_block_mask",
    "to_hf_attention_mask",
    "to_key_padding_mask",
    "to_mha_attn_mask",
    "to_sdpa",
    "visible_count",
    "visible_max",
    "visible_mean",
    "visible_normalize",
    "visible_softmax",
    "visible_sum",
    "whole_word_masking",
    "word_span_masking",
]
