"""Attention masks as composable rules: causal, sliding window, prefix-LM, packed documents, key padding.

Polarity (the one convention, :mod:`masklab.masks`): a rule answers *blocked* — True means the query may NOT
attend to the key. Rules combine with set algebra on the blocked pairs:

- ``a | b``: blocked where either rule blocks (stack restrictions: ``causal() | key_padding(padding)``);
- ``a & b``: blocked only where both block;
- ``~a``: blocked exactly where ``a`` allows.

One rule evaluates to two backends from the same definition: :meth:`AttnMask.dense` gives a boolean tensor
``blocked (B|1, 1, Lq, Lk)`` for SDPA / the reference path, and :meth:`AttnMask.block_mask` gives a FlexAttention
``BlockMask`` (where torch has FlexAttention), so the two can never disagree.

Positions are absolute. When the queries are the last ``Lq`` of ``Lk`` keys (incremental decoding with a KV
cache) pass ``q_offset = Lk - Lq``; that is the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from masklab.masks.convert import to_block_mask

# (b, q_idx, kv_idx) -> blocked. Called with broadcastable index tensors for the dense form and with scalar
# index tensors under FlexAttention's vmap, so rules must be written with plain tensor ops.
Rule = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class AttnMask:
    """A rule saying which (query, key) pairs are blocked (True = may NOT attend).

    Attributes:
        rule: ``(b, q_idx, kv_idx) -> bool`` blocked; indices broadcast against each other.
        name: readable description, e.g. ``"causal | key_padding"``.
        batch: batch size when the rule reads per-row data (padding, document ids), else ``None``.
        kv_len: the key length that data covers (``Lk`` of a padding), else ``None`` (any length).
    """

    rule: Rule
    name: str
    batch: int | None = None
    kv_len: int | None = None

    def _merged(self, other: AttnMask) -> tuple[int | None, int | None]:
        merged = []
        pairs = (("batch sizes", self.batch, other.batch), ("key lengths", self.kv_len, other.kv_len))
        for what, mine, theirs in pairs:
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(
                    f"cannot combine attention masks with {what} {mine} ({self.name}) and {theirs} ({other.name})"
                )
            merged.append(mine if mine is not None else theirs)
        return merged[0], merged[1]

    def check_kv_len(self, kv_len: int) -> None:
        """ValueError unless the rule's per-key data (a padding, document ids) covers ``kv_len`` keys."""
        if self.kv_len is not None and kv_len != self.kv_len:
            raise ValueError(f"attention mask {self.name} covers {self.kv_len} keys, but the attention has {kv_len}")

    def __or__(self, other: AttnMask) -> AttnMask:
        a, b = self.rule, other.rule
        return AttnMask(lambda i, q, k: a(i, q, k) | b(i, q, k), f"({self.name} | {other.name})", *self._merged(other))

    def __and__(self, other: AttnMask) -> AttnMask:
        a, b = self.rule, other.rule
        return AttnMask(lambda i, q, k: a(i, q, k) & b(i, q, k), f"({self.name} & {other.name})", *self._merged(other))

    def __invert__(self) -> AttnMask:
        a = self.rule
        return AttnMask(lambda i, q, k: ~a(i, q, k), f"~{self.name}", self.batch, self.kv_len)

    def dense(
        self,
        q_len: int,
        kv_len: int | None = None,
        *,
        q_offset: int | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Evaluate the rule on every pair.

        Returns:
            ``blocked: bool (B|1, 1, Lq, Lk)`` — True = query may NOT attend to key. The head axis is 1 so the
            result broadcasts over heads in ``(B, H, Lq, Lk)`` attention.
        """
        kv_len = q_len if kv_len is None else kv_len
        self.check_kv_len(kv_len)
        q_offset = kv_len - q_len if q_offset is None else q_offset
        n = 1 if self.batch is None else self.batch
        b = torch.arange(n, device=device).view(n, 1, 1)
        q = torch.arange(q_len, device=device).view(1, q_len, 1) + q_offset
        k = torch.arange(kv_len, device=device).view(1, 1, kv_len)
        blocked = self.rule(b, q, k).to(torch.bool)
        return blocked.expand(n, q_len, kv_len).unsqueeze(1)  # (B|1, 1, Lq, Lk)

    def block_mask(
        self,
        q_len: int,
        kv_len: int | None = None,
        *,
        q_offset: int | None = None,
        device: torch.device | str = "cpu",
        block_size: int = 128,
    ):  # -> torch.nn.attention.flex_attention.BlockMask
        """The same rule as a FlexAttention ``BlockMask`` (whose ``mask_mod`` returns True = attend)."""

        return to_block_mask(self, q_len, kv_len, q_offset=q_offset, device=device, block_size=block_size)


def _check_bool(name: str, value: Tensor, ndim: int) -> None:
    if not isinstance(value, Tensor) or value.dtype != torch.bool or value.ndim != ndim:
        got = f"{value.dtype} tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value)
        raise ValueError(f"{name} must be a bool tensor with {ndim} dims, got {got}")


def full() -> AttnMask:
    """Nothing blocked: every query attends to every key."""
    return AttnMask(lambda b, q, k: torch.zeros_like(q < k), "full")


def causal() -> AttnMask:
    """Lower-triangular: a query may not attend to later keys (blocked where ``k > q``)."""
    return AttnMask(lambda b, q, k: k > q, "causal")


def sliding_window(window: int, *, causal: bool = True) -> AttnMask:
    """Local attention: each query sees at most ``window`` keys (itself included when causal).

    Causal: blocked where ``k > q`` or ``q - k >= window``. Bidirectional: blocked where ``|q - k| >= window``.
    """
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    if causal:
        return AttnMask(lambda b, q, k: (k > q) | (q - k >= window), f"sliding_window({window})")
    return AttnMask(lambda b, q, k: (q - k).abs() >= window, f"sliding_window({window}, bidirectional)")


def prefix_lm(prefix_len: int | Tensor) -> AttnMask:
    """Prefix-LM (T5/UniLM): bidirectional inside the prefix, causal after it.

    Blocked where ``k > q`` and ``k >= prefix_len``. ``prefix_len`` is an int or a long tensor ``(B,)``.
    """
    if isinstance(prefix_len, Tensor):
        if prefix_len.ndim != 1 or prefix_len.dtype.is_floating_point or prefix_len.dtype == torch.bool:
            raise ValueError(
                f"prefix_len must be an int or an integer tensor (B,), got {prefix_len.dtype} {tuple(prefix_len.shape)}"
            )
        lengths = prefix_len
        return AttnMask(lambda b, q, k: (k > q) & (k >= lengths[b]), "prefix_lm", lengths.shape[0])
    if not isinstance(prefix_len, int) or prefix_len < 0:
        raise ValueError(f"prefix_len must be a non-negative int, got {prefix_len!r}")
    return AttnMask(lambda b, q, k: (k > q) & (k >= prefix_len), f"prefix_lm({prefix_len})")


def document(doc_ids: Tensor) -> AttnMask:
    """Block-diagonal mask for packed sequences: a query sees only keys of its own document.

    Args:
        doc_ids: integer ``(B, L)``, the document index of every position. Combine with :func:`causal` for
            packed causal LM: ``causal() | document(doc_ids)``.
    """
    if not isinstance(doc_ids, Tensor) or doc_ids.ndim != 2 or doc_ids.dtype.is_floating_point:
        raise ValueError("doc_ids must be an integer tensor (B, L)")
    return AttnMask(lambda b, q, k: doc_ids[b, q] != doc_ids[b, k], "document", doc_ids.shape[0], doc_ids.shape[1])


def key_padding(padding: Tensor) -> AttnMask:
    """No query attends to a padded key. ``padding: bool (B, Lk)``, True = padded."""
    _check_bool("padding", padding, 2)
    return AttnMask(lambda b, q, k: padding[b, k], "key_padding", padding.shape[0], padding.shape[1])
