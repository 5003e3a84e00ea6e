"""Fill-mask with a trained MLM: the top-k tokens and their probabilities for every [MASK] of a text.

Inference is deterministic: only the [MASK] tokens the text contains are predicted (no random masking).
"""

from __future__ import annotations

import torch

from masklab.models.mlm.model import BertForMLM
from masklab.tokenizers.text import TextTokenizer


def fill_mask(model: BertForMLM, tokenizer: TextTokenizer, text: str, top_k: int = 5) -> list[dict]:
    """One entry per [MASK] in ``text``: ``{"position", "candidates": [(token, probability), ...]}``."""
    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    # Let users write [MASK] whatever the tokenizer's spelling (<mask> for BPE).
    text = text.replace("[MASK]", tokenizer.mask_token)
    ids = torch.tensor([tokenizer.encode(text).ids], device=next(model.parameters()).device)  # (1, L)
    if ids.shape[1] > model.cfg.bert.max_len:
        raise ValueError(f"the text is {ids.shape[1]} tokens; the model reads at most {model.cfg.bert.max_len}")
    masked = ids == tokenizer.mask_id  # (1, L) the positions to predict: exactly the [MASK] tokens
    if not bool(masked.any()):
        raise ValueError(f"the text has no {tokenizer.mask_token} token to fill")
    with torch.no_grad():
        probs = model.predict_masked(model(ids), masked).softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    positions = masked[0].nonzero().flatten().tolist()
    return [
        {"position": pos, "candidates": [(tokenizer.id_to_token(i), float(p)) for i, p in zip(idx, val, strict=True)]}
        for pos, idx, val in zip(positions, top.indices.tolist(), top.values.tolist(), strict=True)
    ]
