"""Autoregressive generation for :class:`masklab.models.clm.GPT`: KV cache, sampling, left padding, stop strings.

One forward pass reads the whole (left-padded) prompt batch and fills a preallocated KV cache per layer; every
later step feeds one token per row and attends to the cache. Each row's positions count its real tokens only
(``positions_from_padding``), and padded keys are blocked through ``padding`` (True = padded), so a left-padded
row produces the same tokens as the prompt on its own.

Shape legend: ``B`` batch, ``T`` tokens, ``V`` vocabulary, ``H`` heads, ``Dh`` head dim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from masklab.models.clm import GPT, positions_from_padding


class StaticKVCache:
    """A KV cache with room for ``capacity`` positions, written in place (no ``torch.cat`` per step).

    Same interface as :class:`masklab.nn.KVCache`: ``update(k, v)`` appends ``(B, H, Lnew, Dh)`` and returns all
    keys/values so far ``(B, H, T, Dh)`` (views of the buffers); ``len(cache)`` is ``T``.
    """

    def __init__(self, batch: int, heads: int, head_dim: int, capacity: int, *, dtype=None, device=None) -> None:
        self.k = torch.empty(batch, heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.empty(batch, heads, capacity, head_dim, dtype=dtype, device=device)
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        end = self.length + k.shape[-2]
        if end > self.k.shape[-2]:
            raise ValueError(f"KV cache holds {self.k.shape[-2]} positions; cannot grow to {end}")
        self.k[:, :, self.length : end] = k
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


def new_caches(model: GPT, batch: int, capacity: int | None = None) -> list[StaticKVCache]:
    """One :class:`StaticKVCache` per layer of ``model`` (capacity defaults to the model's context)."""
    cfg = model.config
    weight = model.tok_embed.weight
    capacity = cfg.context if capacity is None else capacity
    return [
        StaticKVCache(batch, cfg.heads, cfg.dim // cfg.heads, capacity, dtype=weight.dtype, device=weight.device)
        for _ in range(cfg.depth)
    ]


def decode_step(
    model: GPT, token: Tensor, positions: Tensor, caches: Sequence, padding: Tensor | None = None
) -> Tensor:
    """One incremental decoding step through the model's own blocks: ``token (B,)`` at ``positions (B,)``,
    ``caches`` holding the earlier keys/values, ``padding bool (B, Tk)`` over cached + new keys -> ``(B, V)``.

    Attention plans a single query over the cache (:func:`masklab.nn.attention.plan_attention`: plain SDPA when
    nothing is padded), so there is no second copy of the block to keep in step with the model.
    """
    return model(token[:, None], positions=positions[:, None], caches=caches, padding=padding)[:, -1]


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Stack prompts of different lengths, padding on the left -> ``ids (B, T)``, ``padding bool (B, T)``."""
    if not prompts:
        raise ValueError("prompts is empty: give at least one prompt")
    lengths = [len(p) for p in prompts]
    if min(lengths) == 0:
        raise ValueError(f"prompt {lengths.index(0)} is empty: every prompt needs at least one token")
    width = max(lengths)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    padding = torch.ones(len(prompts), width, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        padding[row, width - len(prompt) :] = False
    return ids, padding


def filter_logits(logits: Tensor, *, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set logits outside the top-k and/or the top-p nucleus (Holtzman et al. 2020) to -inf. ``(B, V)``."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p (so the top token always stays).
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # (B, V)
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_tokens(
    logits: Tensor,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Pick one token per row from ``logits (B, V)`` -> long ``(B,)``; ``temperature == 0`` is greedy (argmax).

    Sampling draws on CPU from ``generator`` so a seed replays the same text on any device. The logits are
    shifted so that each row's largest is 0, then divided by ``temperature`` in float64: any temperature > 0
    works, down to the smallest float (a tiny one sends every token below the top to -inf, so it samples among
    the tied likeliest tokens, as greedy decoding picks the first of them) and no division overflows to NaN.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    wide = logits.double()
    shifted = wide - wide.max(dim=-1, keepdim=True).values  # (B, V), each row's largest is 0
    probs = filter_logits(shifted / temperature, top_k=top_k, top_p=top_p).softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _check_options(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


@torch.no_grad()
def generate(
    model: GPT,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 100,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    should_stop: Callable[[int, list[int]], bool] | None = None,
    generator: torch.Generator | None = None,
    pad_id: int = 0,
) -> list[list[int]]:
    """Continue each prompt by up to ``max_new_tokens`` tokens; returns the new tokens of every row.

    Args:
        prompts: token-id lists, any lengths (batched with left padding).
        temperature: 0 = greedy; otherwise sample from ``softmax(logits / temperature)`` after top-k / top-p.
        eos_id: a row stops after producing this token (it is kept in the output).
        should_stop: ``(row, new_tokens) -> bool`` called after each new token (e.g. a stop-string check).
        generator: CPU generator for sampling (default: a fresh one seeded 0, so runs are reproducible).

    When a row would outgrow the model's context it goes on from its last ``3/4 · context`` tokens (a sliding
    window), at the step it would alone; the batch's cache is re-filled from each row's own tokens then, so
    rows of other lengths still produce what they would on their own.
    """
    _check_options(max_new_tokens, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    try:
        return _generate(model, prompts, max_new_tokens, temperature, top_k, top_p, eos_id, should_stop,
                         torch.Generator().manual_seed(0) if generator is None else generator, pad_id)  # fmt: skip
    finally:
        model.train(was_training)


def _generate(model, prompts, max_new_tokens, temperature, top_k, top_p, eos_id, should_stop, generator, pad_id):
    """The decoding loop of :func:`generate` (``model`` already in eval mode, options already checked)."""
    device = model.tok_embed.weight.device
    context = model.config.context
    ids, padding = left_pad(prompts, pad_id)  # (B, T) each
    B = ids.shape[0]
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    window = max(1, (3 * context) // 4)

    def prefill(ids: Tensor, padding: Tensor) -> tuple[Tensor, list[StaticKVCache], Tensor | None, Tensor]:
        """Read ``ids (B, T)`` into fresh caches -> last logits (B, V), caches, key padding buffer, positions."""
        caches = new_caches(model, B, context)
        positions = positions_from_padding(padding)  # (B, T)
        pad_buf = None
        if bool(padding.any()):
            # Keys of later steps are real tokens: the buffer's tail stays False and grows by one view per step.
            pad_buf = torch.zeros(B, context, dtype=torch.bool, device=device)
            pad_buf[:, : padding.shape[1]] = padding
        logits = model(
            ids.to(device),
            padding=None if pad_buf is None else pad_buf[:, : padding.shape[1]],
            positions=None if pad_buf is None else positions.to(device),
            caches=caches,
            last_only=True,
        )
        return logits[:, -1], caches, pad_buf, positions[:, -1].to(device)

    if ids.shape[1] > context:  # read only the last `context` tokens of a too-long prompt
        ids, padding = ids[:, -context:], padding[:, -context:]
    logits, caches, pad_buf, last_pos = prefill(ids, padding)
    steps: list[Tensor] = []  # new tokens (B,) since the last prefill; `ids` holds what that prefill read
    for _ in range(max_new_tokens):
        token = next_tokens(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)  # (B,)
        for row, value in enumerate(token.tolist()):
            if done[row]:
                continue
            out[row].append(value)
            if (eos_id is not None and value == eos_id) or (should_stop is not None and should_stop(row, out[row])):
                done[row] = True
        if all(done):
            break
        steps.append(token.cpu())
        cached = len(caches[0])
        if cached + 1 > context:  # the batch is full: rows past the context slide, all are re-read
            ids, padding = slide_rows(ids, padding, steps, context, window, pad_id)
            steps = []
            logits, caches, pad_buf, last_pos = prefill(ids, padding)
            continue
        last_pos = last_pos + 1
        key_padding = None if pad_buf is None else pad_buf[:, : cached + 1]
        logits = decode_step(model, token.to(device), last_pos, caches, key_padding)  # (B, V)
    return out


def slide_rows(
    ids: Tensor, padding: Tensor, steps: list[Tensor], context: int, window: int, pad_id: int
) -> tuple[Tensor, Tensor]:
    """Each row's real tokens, ``ids (B, T)`` without its ``padding`` then the ``steps`` tokens ``(B,)`` each;
    a row longer than ``context`` keeps its last ``window`` (what it keeps when generating alone), a shorter row
    keeps all. Left-padded again -> ``(ids, padding)``, ``(B, T')`` each."""
    tokens = torch.cat([ids, torch.stack(steps, dim=1)], dim=1) if steps else ids
    pads = torch.cat([padding, padding.new_zeros(len(ids), len(steps))], dim=1)
    rows = []
    for row, pad in zip(tokens, pads, strict=True):
        real = row[~pad].tolist()
        rows.append(real[-window:] if len(real) > context else real)
    return left_pad(rows, pad_id)


def generate_text(
    model: GPT,
    prompts: Sequence[str],
    *,
    encode: Callable[[str], list[int]],
    decode: Callable[[Sequence[int]], str],
    stop: Sequence[str] = (),
    **options,
) -> list[str]:
    """Continue text prompts; returns each prompt's continuation (without the prompt).

    ``encode``/``decode`` convert text and token ids (e.g. a tokenizer's, without special tokens). A row stops as
    soon as its continuation contains one of the ``stop`` strings and is cut just before it (the stop string is
    not returned). ``options`` go to :func:`generate` (``max_new_tokens``, ``temperature``, ``top_k``, ...).
    """
    stop = [s for s in stop if s]
    encoded = [encode(p) for p in prompts]
    empty = [i for i, ids in enumerate(encoded) if not ids]
    if empty:
        raise ValueError(f"prompt {empty[0]} ({prompts[empty[0]]!r}) encodes to no tokens")

    def hit(row: int, new: list[int]) -> bool:
        text = decode(new)
        return any(s in text for s in stop)

    rows = generate(model, encoded, should_stop=hit if stop else None, **options)
    texts = []
    for new in rows:
        text = decode(new)
        cut = min((text.find(s) for s in stop if s in text), default=len(text))
        texts.append(text[:cut])
    return texts
