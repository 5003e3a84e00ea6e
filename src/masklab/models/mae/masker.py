"""The learned, adversarial masker: a small network that proposes which tokens to hide (ADIOS, AutoMAE).

The sampling and the adversarial objective are pure tensor functions in :mod:`masklab.masks.learned`; this
module holds the network (:class:`LearnedMasker`) and the module that trains it beside a model
(:class:`AdversarialMasking`). Polarity: ``masked: bool (B, L)`` True = hidden; ``padding: bool (B, L)`` True =
padded, never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import ModelConfig
from masklab.masks.convert import padding_to_blocked
from masklab.masks.learned import (
    LearnedMaskSample,
    masker_loss,
    relaxed_topk,
    sample,
)
from masklab.nn.blocks import Encoder, TransformerConfig


@dataclass(frozen=True)
class LearnedMaskerConfig(ModelConfig):
    """A :class:`LearnedMasker` and the objective :class:`AdversarialMasking` gives it.

    ``in_dim``: values per token (P for patches, D for embeddings); ``max_tokens``: position table size.
    """

    in_dim: int
    max_tokens: int
    dim: int = 32
    depth: int = 1
    heads: int = 2
    mlp_hidden: int = 64  # the MLP's hidden width
    temperature: float = 1.0
    entropy_weight: float = 0.0
    spread_weight: float = 0.1

    mlp_widths: ClassVar[Mapping[str, str]] = {"mlp_hidden": "dim"}

    def __post_init__(self) -> None:
        for name in ("in_dim", "max_tokens", "dim", "depth", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"learned masker {name} must be an int >= 1, got {value!r}")
        if not self.temperature > 0 or self.entropy_weight < 0 or self.spread_weight < 0:
            raise ValueError(f"learned masker needs temperature > 0, entropy_weight >= 0, spread_weight >= 0; "
                             f"got {self.temperature}, {self.entropy_weight}, {self.spread_weight}")  # fmt: skip
        self.transformer()  # validates dim / heads

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(dim=self.dim, depth=self.depth, heads=self.heads, mlp_hidden=self.mlp_hidden)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | LearnedMaskerConfig) -> LearnedMaskerConfig:
        """As :meth:`ModelConfig.from_dict`; the ``lr`` of the masker's former separate optimizer is ignored."""
        if isinstance(values, Mapping):
            values = {k: v for k, v in values.items() if k != "lr"}
        return super().from_dict(values)


class LearnedMasker(nn.Module):
    """Tokens ``(B, L, in_dim)`` -> mask logits ``(B, L)`` (higher = more likely hidden).

    Feed inputs at unit scale (the MAE's normalised patches, embeddings); no input LayerNorm, since that
    would map every flat patch (all background, all ink) to the same vector.
    """

    def __init__(self, config: LearnedMaskerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = Linear(config.in_dim, config.dim)
        self.pos_embed = nn.Parameter(torch.zeros(config.max_tokens, config.dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.encoder = Encoder(config.transformer())
        self.head = Linear(config.dim, 1)
        # Zero head: all logits 0, so the untrained masker draws uniform random masks (MAE's baseline).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: Tensor, padding: Tensor | None = None) -> Tensor:
        """``tokens (B, L, in_dim)``, ``padding`` bool (B, L) True = padded -> logits ``(B, L)``."""
        if tokens.ndim != 3 or tokens.shape[-1] != self.config.in_dim:
            raise ValueError(f"learned masker takes tokens (B, L, {self.config.in_dim}), got {tuple(tokens.shape)}")
        length = tokens.shape[1]
        if length > self.config.max_tokens:
            raise ValueError(f"{length} tokens exceed the learned masker's max_tokens={self.config.max_tokens}")
        x = self.embed(tokens) + self.pos_embed[:length]  # (B, L, D)
        blocked = None if padding is None else padding_to_blocked(padding)  # (B, 1, 1, L)
        return self.head(self.encoder(x, blocked=blocked)).squeeze(-1)  # (B, L)


class AdversarialMasking(nn.Module):
    """A :class:`LearnedMasker` that proposes masks and scores them to maximise the model's hidden-token loss.

    Use in a model's ``training_loss``::

        logits = self.adversary.masker(patches.detach())             # (B, L), with its graph
        sample = self.adversary.propose(patches, generator, logits=logits)  # exact budget, no gradient
        per_token = ((pred - target) ** 2).mean(-1)                  # (B, L), any per-token loss
        objective = self.adversary.loss(patches, per_token.detach(), sample, logits=logits)
        loss = loss_on_masked(per_token, sample.masked) + (objective - objective.detach())

    The masker is a submodule, so its weights travel with the model's checkpoint, and the model's own optimizer
    trains it: :meth:`loss` enters the model's loss through gradient reversal (see ``MAE.adversarial_loss``).
    """

    def __init__(self, config: LearnedMaskerConfig, ratio: float) -> None:
        super().__init__()
        if not 0 <= ratio < 1:
            raise ValueError(f"mask ratio must be in [0, 1), got {ratio!r}")
        self.config = config
        self.ratio = ratio
        self.masker = LearnedMasker(config)

    def propose(
        self,
        tokens: Tensor,
        generator: torch.Generator | None = None,
        *,
        padding: Tensor | None = None,
        logits: Tensor | None = None,
    ) -> LearnedMaskSample:
        """Masks for ``tokens (B, L, in_dim)`` (no gradient): exact budget, ids when row counts are equal.

        ``logits``: the masker's scores of ``tokens`` if already computed (they are detached here).
        """
        if logits is None:
            with torch.no_grad():
                logits = self.masker(tokens.detach(), padding)
        return sample(logits.detach(), self.ratio, generator, temperature=self.config.temperature, padding=padding)

    def loss(self, tokens: Tensor, per_token_loss: Tensor, proposal: LearnedMaskSample, *,
             padding: Tensor | None = None, logits: Tensor | None = None) -> Tensor:  # fmt: skip
        """The masker's differentiable objective for a proposal (replays its Gumbel noise).

        ``logits``: ``self.masker(tokens)`` with its graph, if the caller already ran it (saves a forward).
        """
        if proposal.noise is None:
            raise ValueError("the proposal carries no Gumbel noise; pass the sample returned by propose()")
        if logits is None:
            logits = self.masker(tokens.detach(), padding)
        relaxed = relaxed_topk(logits, proposal.noise, proposal.masked, temperature=self.config.temperature,
                               padding=padding)  # fmt: skip
        soft = proposal.masked.to(relaxed.dtype) + (relaxed - relaxed.detach())
        return masker_loss(per_token_loss, soft, masked=proposal.masked, logits=logits, padding=padding,
                           entropy_weight=self.config.entropy_weight,
                           spread_weight=self.config.spread_weight)  # fmt: skip
