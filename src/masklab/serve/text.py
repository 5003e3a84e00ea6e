"""The text panels' work: fill [MASK] with an MLM, token x token attention of a text run, and a causal LM's
continuation token by token.

Streaming reuses :func:`masklab.models.clm.generation.generate` unchanged: its ``should_stop`` hook is called after
every new token, so it hands each token's text to ``emit`` and stops the loop when the client has gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from masklab.serve.errors import InputError
from masklab.serve.runs import LoadedRun

MAX_ATTENTION_TOKENS = 64  # a T x T heatmap per layer and head: beyond this the page cannot show the labels


def fill(run: LoadedRun, text: str, top_k: int) -> dict:
    """Top-``top_k`` tokens with probabilities for every [MASK] in ``text`` (field ``text``)."""
    from masklab.recipes.mlm_tasks import fill_mask

    if "[MASK]" not in text and run.tokenizer.mask_token not in text:
        raise InputError("text", "the text has no [MASK] token to fill, e.g. 'The [MASK] sat on the mat.'")
    try:
        results = fill_mask(run.model, run.tokenizer, text, top_k)
    except ValueError as err:
        raise InputError("text", str(err)) from None
    masks = [
        {"position": r["position"], "candidates": [{"token": t, "probability": p} for t, p in r["candidates"]]}
        for r in results
    ]
    return {"mask_token": run.tokenizer.mask_token, "masks": masks}


def attention(run: LoadedRun, text: str, max_tokens: int) -> dict:
    """Per-layer, per-head attention weights ``[layer][head][query][key]`` of an mlm / clm run on ``text``."""
    from masklab.recipes.attention_maps import text_attention_weights, text_limits

    if not text.strip():
        raise InputError("text", "the text is empty")
    limit, specials = text_limits(run.model, run.kind)
    if max_tokens < specials + 1:
        raise InputError("max_tokens", f"expected at least {specials + 1} (the specials plus one token)")
    limit, why = (max_tokens, "max_tokens") if max_tokens < limit else (limit, "the model's limit")
    try:
        weights, tokens, notes = text_attention_weights(run.model, run.tokenizer, run.kind, text, limit, why)
    except ValueError as err:
        raise InputError("text", str(err)) from None
    stacked = torch.stack([w[0] for w in weights])  # (layers, H, T, T)
    return {
        "tokens": tokens,
        "layers": stacked.shape[0],
        "heads": stacked.shape[1],
        "causal": run.kind == "clm",
        "weights": stacked.mul(1e4).round().div(1e4).tolist(),
        "notes": [n.replace("INPUT", "the text") for n in notes],
    }


def prompt_ids(run: LoadedRun, prompt: str) -> list[int]:
    """The prompt's token ids (field ``prompt``: not empty, and not longer than the model reads)."""
    if not prompt.strip():
        raise InputError("prompt", "the prompt is empty: type some text to continue")
    ids = run.tokenizer.encode(prompt, add_special_tokens=False).ids
    if not ids:
        raise InputError("prompt", f"the prompt {prompt[:40]!r} encodes to no tokens")
    return ids


def stream_generate(
    run: LoadedRun,
    ids: list[int],
    *,
    max_tokens: int,
    temperature: float,
    top_k: int,
    seed: int,
    emit: Callable[[dict], None],
    cancelled: threading.Event,
) -> dict:
    """Continue ``ids`` and ``emit`` every new token's text as it comes: ``{"delta": str}`` when the decoded text
    grew by it, ``{"text": str}`` (the whole continuation) when decoding rewrote earlier characters. Stops
    early when ``cancelled`` is set. Returns ``{"text", "tokens"}`` of the continuation."""
    from masklab.models.clm.generation import generate

    tokenizer = run.tokenizer
    shown = ""

    def on_token(row: int, new: list[int]) -> bool:
        nonlocal shown
        text = tokenizer.decode(new)
        if not text.startswith(shown):
            emit({"text": text})
        elif len(text) > len(shown):  # a token that decodes to nothing (a special) shows nothing
            emit({"delta": text[len(shown) :]})
        shown = text
        return cancelled.is_set()

    try:
        new = generate(run.model, [ids], max_new_tokens=max_tokens, temperature=temperature, top_k=top_k or None,
                       should_stop=on_token, generator=torch.Generator().manual_seed(seed),
                       pad_id=tokenizer.role_id("pad") or 0)[0]  # fmt: skip
    except ValueError as err:
        raise InputError("body", str(err)) from None
    return {"text": tokenizer.decode(new), "tokens": len(new)}
