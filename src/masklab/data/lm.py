"""Language-model data: one token stream, split by position, read as contiguous windows.

A causal LM trains on windows of ``context + 1`` consecutive tokens (inputs are the first ``context``, targets
the last ``context``). Like nanoGPT, every start position is a training example, so an epoch of the ``fit``
sampler visits random offsets; validation reads non-overlapping windows of the held-out *end* of the stream
(a split by position, never by shuffling, so no validation text leaks into training windows).

Shape legend: ``N`` tokens in a stream, ``B`` batch, ``T`` context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from masklab.tokenizers.text import TextTokenizer


def token_stream(tokenizer: TextTokenizer, texts: Sequence[str], *, separator: int | None = None) -> Tensor:
    """Encode ``texts`` without special tokens and concatenate them -> long ``(N,)``.

    ``separator`` (e.g. the tokenizer's ``[SEP]``/``</s>`` id) goes between documents so the model sees where
    one ends; None concatenates the raw text. A document that encodes to no token is left out (no separator
    for it), as ``masklab prepare`` leaves it out of its shards: the same documents give the same stream.
    """
    if not texts:
        raise ValueError("no texts to encode")
    parts: list[np.ndarray] = []
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        if not enc.ids:
            continue
        if parts and separator is not None:
            parts.append(np.asarray([separator], dtype=np.int64))
        parts.append(np.asarray(enc.ids, dtype=np.int64))
    if not parts:
        raise ValueError("the texts encoded to zero tokens")
    return torch.from_numpy(np.concatenate(parts))


def split_by_position(tokens: Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """First ``1 - val_fraction`` of the stream for training, the rest for validation (nanoGPT's 90/10)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    cut = len(tokens) - round(len(tokens) * val_fraction)
    return tokens[:cut], tokens[cut:]


class LMWindows:
    """``fit`` data: example ``i`` is ``tokens[i * stride : i * stride + context + 1]``.

    ``tokens``: a long ``(N,)`` tensor, or a stream read on demand (anything with ``__len__`` and
    ``read(start, stop) -> int64 array``, e.g. :class:`masklab.data.shards.datasets.TokenSpan` of a prepared
    corpus). ``get_batch`` returns ``{"ids": long (B, context + 1)}`` (no padding: every window is full).
    ``stride=1`` (training) makes every offset an example; ``stride=context`` tiles the stream without overlap
    (evaluation: each token is predicted once).
    """

    def __init__(self, tokens: Tensor | Any, context: int, *, stride: int = 1) -> None:
        if not torch.is_tensor(tokens):
            if not callable(getattr(tokens, "read", None)):
                raise ValueError(f"tokens must be a long (N,) tensor or a stream with read(), got {type(tokens)}")
        elif tokens.ndim != 1 or tokens.dtype != torch.long:
            raise ValueError(f"tokens must be a long (N,) stream, got {tokens.dtype} {tuple(tokens.shape)}")
        if context < 1 or stride < 1:
            raise ValueError(f"context and stride must be >= 1, got context={context}, stride={stride}")
        if len(tokens) < context + 1:
            raise ValueError(
                f"the token stream has {len(tokens)} tokens, fewer than one window of context + 1 = {context + 1}; "
                "use more text or a smaller --context"
            )
        self.tokens, self.context, self.stride = tokens, context, stride

    def __len__(self) -> int:
        return (len(self.tokens) - self.context - 1) // self.stride + 1

    def get_batch(self, indices: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        starts = indices.long() * self.stride  # (B,)
        if not torch.is_tensor(self.tokens):
            rows = [self.tokens.read(s, s + self.context + 1) for s in starts.tolist()]
            return {"ids": torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, self.context + 1).long()}
        offsets = torch.arange(self.context + 1)  # (T + 1,)
        return {"ids": self.tokens[starts[:, None] + offsets[None, :]]}  # (B, T + 1)
