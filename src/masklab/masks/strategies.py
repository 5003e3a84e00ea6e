"""The masking-strategy registry: one table from a mask kind's name to the pure function that draws it.

Every model resolves its mask kind here (MAE ``mask_kind``, MLM ``masking``, the table model's observed-cell
masking, the series model's ``random`` / ``tail`` patches), so a new kind is one function and one line below,
and every model can name it.

A strategy is ``draw(request, generator) -> MaskSample``: a pure tensor function of a :class:`MaskRequest`
(what is being masked) and an explicit CPU ``torch.Generator``. ``masked: bool (B, L)`` True = hidden;
``protected: bool (B, L)`` True = never hidden (padding, special tokens, missing table cells). Some kinds need
more than the shape: ``grid`` (the ``(gh, gw)`` patch grid), ``word_ids`` (long (B, L), -1 = not in a word)
or ``scores`` (float (B, L), e.g. attention or a learned masker's logits, computed by the model).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from masklab.masks.attention_guided import attention_high_strategy, attention_low_strategy
from masklab.masks.generators import MaskSample, bernoulli_strategy, grid_strategy, random_strategy
from masklab.masks.learned import learned_strategy
from masklab.masks.regions import block_strategy, span_strategy, whole_word_strategy
from masklab.masks.tail import tail_strategy


@dataclass(frozen=True)
class MaskRequest:
    """What one draw masks.

    batch, length: ``B`` and ``L``; ratio: the share of (unprotected) tokens to hide;
    protected: bool (B, L) True = never hidden; grid: ``(gh, gw)`` with ``gh * gw == L`` (image patches);
    word_ids: long (B, L), pieces of a word share an id, -1 = not in a word; scores: float (B, L), higher =
    more important (attention-guided, learned); noise: float (B, L) replaying MAE's random masking;
    device: where the mask goes (draws stay on CPU); options: kind-specific settings (``span_p``,
    ``span_max``, ``span_unit``, ``jitter``, ``noise_scale``, ``temperature``, ``count``, ``keep_first``).
    """

    batch: int
    length: int
    ratio: float
    protected: Tensor | None = None
    grid: tuple[int, int] | None = None
    word_ids: Tensor | None = None
    scores: Tensor | None = None
    noise: Tensor | None = None
    device: torch.device | str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


Draw = Callable[[MaskRequest, "torch.Generator | None"], MaskSample]


@dataclass(frozen=True)
class MaskStrategy:
    """A registered mask kind: its ``draw`` function, what the request must carry (``needs``) and whether every
    row hides the same count (``equal_counts``: MAE's drop mode needs it to build ``ids_keep``)."""

    name: str
    draw: Draw
    needs: frozenset[str] = frozenset()
    equal_counts: bool = False
    summary: str = ""


def _strategy(
    name: str, draw: Draw, needs: tuple[str, ...] = (), equal: bool = False, summary: str = ""
) -> MaskStrategy:
    return MaskStrategy(name, draw, frozenset(needs), equal, summary)


STRATEGIES: dict[str, MaskStrategy] = {
    s.name: s
    for s in (
        _strategy("random", random_strategy, (), True, "MAE: L - int(L (1 - ratio)) per row; jitter: per-row share"),
        _strategy("bernoulli", bernoulli_strategy, (), False, "BERT: each token independently with probability ratio"),
        _strategy("block", block_strategy, ("grid",), True, "BEiT: rectangular blocks of patches"),
        _strategy("grid", grid_strategy, ("grid",), True, "one visible patch per k x k cell (ratio 1 - 1/k²)"),
        _strategy("span", span_strategy, (), False, "SpanBERT: geometric spans of tokens, or of whole words"),
        _strategy("whole_word", whole_word_strategy, ("word_ids",), False, "BERT: all pieces of sampled words"),
        _strategy("attention-high", attention_high_strategy, ("scores",), True, "AttMask: hide the most attended"),
        _strategy("attention-low", attention_low_strategy, ("scores",), True, "AttMask: hide the least attended"),
        _strategy("learned", learned_strategy, ("scores",), True, "ADIOS/AutoMAE: top-k of a masker's logits"),
        _strategy("tail", tail_strategy, (), False, "PatchTST forecast: the last options['count'] real tokens"),
    )
}  # fmt: skip


def resolve(name: str, *, allowed: tuple[str, ...] | None = None, what: str = "mask kind") -> MaskStrategy:
    """The registered strategy ``name``; ``ValueError`` naming ``what`` (e.g. ``"MAEConfig.mask_kind"``) and the
    known kinds (or the ``allowed`` subset a model supports) otherwise."""
    known = tuple(STRATEGIES) if allowed is None else allowed
    if name not in known or name not in STRATEGIES:
        raise ValueError(f"{what} must be one of {', '.join(known)}; got {name!r}")
    return STRATEGIES[name]


def draw_mask(name: str, request: MaskRequest, generator: torch.Generator | None = None) -> MaskSample:
    """Resolve ``name`` and draw it for ``request`` (a missing ``grid``/``word_ids``/``scores`` is an error)."""
    strategy = resolve(name)
    missing = sorted(n for n in strategy.needs if getattr(request, n) is None)
    if missing:
        raise ValueError(f"mask kind {name!r} needs {', '.join(missing)} in the request")
    return strategy.draw(request, generator)
