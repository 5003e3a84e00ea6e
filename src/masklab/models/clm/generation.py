"""Autoregressive generation for :class:`masklab.models.clm.GPT`: KV cache, sampling, left padding, stop strings.

One forward pass reads the whole (left-padded) prompt batch and fills a preallocated KV cache per layer; every
later step feeds one token per row and attends to the cache. Each row's positions count its real tokens only
(``positions_from_padding``), and padded keys are blocked through ``padding`` (True = padded), so a left-padded
row produces the same tokens as the prompt on its own.

Shape legend: ``B`` batch, ``T`` tokens, ``V`` vocabulary, ``H`` heads, ``Dh`` head dim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from masklab.masks.convert import padding_to_blocked, to_sdpa
from masklab.models.clm import GPT, positions_from_padding
from masklab.nn.cpu_linear import frozen_linear, linear


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


class DecodeStep:
    """One incremental decoding step of a :class:`GPT` as plain tensor ops over its own parameters.

    Per new token the model's work is a handful of tiny matmuls, so on CPU the ~50 ``nn.Module`` calls of a
    regular forward cost more than the arithmetic. This path does the same computation as ``GPT.forward`` in eval
    mode for ``(B, 1)`` inputs (tests hold it equal to that path) on the model's own parameters, except that on
    CPU the layers' weight matrices may be copied once into oneDNN's layout for ``batch`` rows
    (:func:`~masklab.nn.cpu_linear.frozen_linear`): build a new ``DecodeStep`` after changing the weights.
    """

    def __init__(self, model: GPT, batch: int = 1) -> None:
        cfg = model.config
        self.dim, self.heads, self.eps = cfg.dim, cfg.heads, cfg.norm_eps
        self.approximate = "tanh" if cfg.activation == "gelu_tanh" else "none"
        self.relu = cfg.activation == "relu"
        self.tok = model.tok_embed.weight
        self.pos = model.pos_embed.weight
        self.head = model.tok_embed.weight if model.lm_head is None else model.lm_head.weight
        self.final_norm = (model.decoder.norm.weight, model.decoder.norm.bias)

        # On CPU the four matmuls of a layer may run on weights pre-packed for ``batch`` rows (frozen_linear);
        # everything else reads the parameters themselves.
        def frozen(layer: torch.nn.Linear) -> Callable[[Tensor], Tensor]:
            return frozen_linear(layer.weight, layer.bias, batch)

        with torch.no_grad():
            self.layers = [
                (b.norm1.weight, b.norm1.bias, frozen(b.attn.qkv), frozen(b.attn.proj), b.norm2.weight, b.norm2.bias,
                 frozen(b.mlp.fc1), frozen(b.mlp.fc2))
                for b in model.decoder.blocks
            ]  # fmt: skip

    def __call__(self, token: Tensor, positions: Tensor, caches: Sequence, padding: Tensor | None) -> Tensor:
        """``token (B,)`` at ``positions (B,)``; ``padding bool (B, Tk)`` covers cached + new keys -> ``(B, V)``."""
        B, D, H = token.shape[0], self.dim, self.heads
        # The new token is real, so no query row is fully blocked and SDPA needs no NaN guard here.
        attn_mask = None if padding is None else to_sdpa(padding_to_blocked(padding))  # (B, 1, 1, Tk)
        x = (F.embedding(token, self.tok) + self.pos[positions])[:, None]  # (B, 1, D)
        for layer, cache in zip(self.layers, caches, strict=True):
            n1w, n1b, qkv, proj, n2w, n2b, fc1, fc2 = layer
            h = F.layer_norm(x, (D,), n1w, n1b, self.eps)
            q, k, v = qkv(h).view(B, 1, 3, H, D // H).permute(2, 0, 3, 1, 4).unbind(0)
            k, v = cache.update(k, v)  # (B, H, Tk, Dh)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, 1, Dh)
            x = x + proj(a.transpose(1, 2).reshape(B, 1, D))
            h = fc1(F.layer_norm(x, (D,), n2w, n2b, self.eps))
            h = F.relu(h) if self.relu else F.gelu(h, approximate=self.approximate)
            x = x + fc2(h)
        x = F.layer_norm(x, (D,), *self.final_norm, self.eps)
        return linear(x[:, 0], self.head)  # (B, V)


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

    Sampling draws on CPU from ``generator`` so a seed replays the same text on any device.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p).softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _check_options(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
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

    When a row would outgrow the model's context, the batch is re-read from its last ``3/4 · context`` tokens
    (a sliding window, re-filling the cache) and generation goes on.
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
    step = DecodeStep(model, batch=B)

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
        if cached + 1 > context:  # slide the window: re-read the last `window` tokens
            ids = torch.cat([ids, torch.stack(steps, dim=1)], dim=1)[:, -window:]
            padding = torch.cat([padding, padding.new_zeros(B, len(steps))], dim=1)[:, -window:]
            steps = []
            logits, caches, pad_buf, last_pos = prefill(ids, padding)
            continue
        last_pos = last_pos + 1
        logits = step(token, last_pos, caches, None if pad_buf is None else pad_buf[:, : cached + 1])  # (B, V)
    return out


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
