"""GPT: a decoder-only causal language model (Radford et al. 2019) built on :class:`masklab.nn.Encoder`.

The *causal* way of masking (the third of masklab's three, :mod:`masklab.masks`): every position may attend
only to itself and earlier positions (the ``causal()`` rule as attention's one mask argument; SDPA's
``is_causal`` kernel when nothing else blocks), and the targets are the inputs shifted left by one. Nothing
is hidden from the input; the triangle hides the future.

Shape legend: ``B`` batch, ``T`` tokens, ``D`` width, ``V`` vocabulary, ``H`` heads.
Mask polarity: ``padding: bool (B, T)`` True = padded position (its key is attended by no query and its target
is not scored). With a KV cache, ``padding`` covers the cached positions plus the new ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput, ModelConfig, preset_config
from masklab.masks.attention import causal, key_padding
from masklab.masks.ops import last_token
from masklab.nn import Encoder, KVCache, LearnedPositionEmbedding, TransformerConfig
from masklab.nn.cpu_linear import linear

# Named sizes. gpt-char is nanoGPT's CPU recipe for character-level Shakespeare (4 layers x 4 heads x 128 wide,
# context 64, no dropout); gpt2-small is GPT-2's 124M model (vocab 50257, context 1024).
PRESETS: dict[str, dict[str, Any]] = {
    "gpt-tiny": {"dim": 64, "depth": 2, "heads": 4, "context": 128},
    "gpt-char": {"dim": 128, "depth": 4, "heads": 4, "context": 64},
    "gpt2-small": {"dim": 768, "depth": 12, "heads": 12, "context": 1024, "vocab_size": 50257},
}


@dataclass(frozen=True)
class GPTConfig(ModelConfig):
    """Shape of a GPT. Defaults are GPT-2's choices (pre-norm, tanh GELU, LayerNorm eps 1e-5, tied embeddings)."""

    mlp_widths: ClassVar[Mapping[str, str]] = {"mlp_hidden": "dim"}

    vocab_size: int
    context: int = 256  # number of learned positions: the longest sequence the model can read
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_hidden: int | None = None  # MLP hidden width (GPT-2's n_inner); None = 4 * dim
    dropout: float = 0.0
    norm_eps: float = 1e-5
    activation: str = "gelu_tanh"
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 4 * self.dim)
        for name in ("vocab_size", "context", "dim", "depth", "heads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        self.transformer()  # validates dim/heads/activation

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_hidden=self.mlp_hidden,
            dropout=self.dropout,
            attn_dropout=self.dropout,
            norm_first=True,
            norm_eps=self.norm_eps,
            activation=self.activation,  # type: ignore[arg-type]
            final_norm=True,
        )


def positions_from_padding(padding: Tensor) -> Tensor:
    """Position ids for left-padded rows: ``padding (B, T)`` -> long ``(B, T)``.

    A row's first real token gets position 0 (cumulative count of real tokens minus one), so a left-padded row
    reads exactly the positions of the same prompt unpadded. Padded slots get 0; their keys are blocked anyway.
    """
    real = (~padding).long()
    return (real.cumsum(dim=1) - 1).clamp_min(0)  # (B, T)


class GPT(nn.Module):
    """Token + learned position embeddings -> causal pre-norm blocks -> final LayerNorm -> (tied) LM head."""

    kind: ClassVar[str] = "clm"

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.config = cfg
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_embed = LearnedPositionEmbedding(cfg.context, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        self.decoder = Encoder(cfg.transformer())
        # Press & Wolf 2017: sharing the input embedding with the output projection (GPT-2 does).
        self.lm_head = None if cfg.tie_embeddings else Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.reset_parameters()

    @classmethod
    def from_config(cls, config: GPTConfig | Mapping[str, Any]) -> GPT:
        """An untrained GPT from a config or its dict (``config.json["model"]``)."""
        return cls(GPTConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPT:
        """A named size (:data:`PRESETS`) with ``overrides`` (e.g. ``vocab_size`` from the tokenizer)."""
        return cls(preset_config(GPTConfig, PRESETS, name, **overrides))

    def reset_parameters(self) -> None:
        """GPT-2's init: N(0, 0.02) weights, zero biases, and the residual output projections scaled by
        1/sqrt(2·depth) so the residual stream's variance does not grow with depth (Radford et al. 2019, §2.3)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        residual_std = 0.02 / math.sqrt(2 * self.config.depth)
        for block in self.decoder.layers:
            nn.init.normal_(block.attn.proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.fc2.weight, mean=0.0, std=residual_std)
        nn.init.normal_(self.pos_embed.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        ids: Tensor,
        *,
        padding: Tensor | None = None,
        positions: Tensor | None = None,
        caches: Sequence[KVCache] | None = None,
        last_only: bool = False,
    ) -> Tensor:
        """Next-token logits.

        Args:
            ids: long ``(B, T)`` token ids (the new tokens only, when ``caches`` hold earlier ones).
            padding: ``bool (B, Tk)``, True = padded; ``Tk`` = cached + new positions. None = no padding.
            positions: long ``(B, T)`` position ids; default ``past, ..., past + T - 1`` where ``past`` is the
                number of cached positions. Left-padded batches pass :func:`positions_from_padding`.
            caches: one KV cache per layer (``masklab.nn.KVCache`` or anything with ``update(k, v)``/``len``).
            last_only: return only the last position's logits ``(B, 1, V)`` (generation's prefill).

        Returns:
            ``logits (B, T, V)`` (float, the model's dtype): logits[:, t] predicts the token after ``ids[:, t]``.
        """
        if ids.ndim != 2:
            raise ValueError(f"ids must be (B, T) token ids, got shape {tuple(ids.shape)}")
        x = self.embed_tokens(ids, positions=positions, past=len(caches[0]) if caches else 0)  # (B, T, D)
        blocked = causal() if padding is None else causal() | key_padding(padding)
        x = self.decoder(x, blocked=blocked, caches=None if caches is None else list(caches))
        if last_only:
            x = x[:, -1:]  # (B, 1, D)
        weight = self.tok_embed.weight if self.lm_head is None else self.lm_head.weight
        return linear(x, weight)  # (B, T, V)

    def embed(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """Pooled features ``(B, D)``: the final hidden state of each row's last real token (the only one that
        has read the whole row). ``ids`` long (B, T); ``padding`` bool (B, T) True = padded (left or right)."""
        x = self.embed_tokens(ids, positions=None if padding is None else positions_from_padding(padding))
        blocked = causal() if padding is None else causal() | key_padding(padding)
        hidden = self.decoder(x, blocked=blocked)  # (B, T, D)
        if padding is None:
            return hidden[:, -1]
        return last_token(hidden, padding)

    def embed_tokens(self, ids: Tensor, *, positions: Tensor | None = None, past: int = 0) -> Tensor:
        """The decoder's input ``(B, T, D)``: token + learned position embeddings (then dropout) of ``ids (B, T)``;
        positions ``past .. past + T - 1`` unless ``positions (B, T)`` are given (see :meth:`forward`)."""
        x = self.tok_embed(ids)  # (B, T, D)
        if positions is None:
            x = x + self.pos_embed(ids.shape[1], offset=past)  # (T, D) broadcast over B
        else:
            if int(positions.max()) >= self.config.context:
                raise ValueError(f"position {int(positions.max())} exceeds the model's context {self.config.context}")
            x = x + self.pos_embed.weight[positions]  # (B, T, D)
        return self.drop(x)

    def training_loss(self, batch: Mapping[str, Tensor], generator: torch.Generator | None = None) -> LossOutput:
        """Next-token cross entropy on a batch ``{"ids": long (B, T + 1)}`` (optionally ``"padding" (B, T + 1)``).

        Inputs are ``ids[:, :-1]``, targets ``ids[:, 1:]``; a padded target is not scored. No randomness is drawn
        (``generator`` is accepted for the training-loop contract; dropout uses torch's global RNG).
        """
        ids = batch["ids"]
        padding = batch.get("padding")
        inputs, targets = ids[:, :-1], ids[:, 1:]  # (B, T) each
        logits = self(inputs, padding=None if padding is None else padding[:, :-1])  # (B, T, V)
        if padding is not None:
            targets = targets.masked_fill(padding[:, 1:], -100)  # cross_entropy's ignore_index
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)
        return LossOutput(loss)


@torch.no_grad()
def evaluate_nll(model: GPT, data: Any, *, batch_size: int = 32, max_batches: int | None = None,
                 deadline: float | None = None) -> dict[str, float]:  # fmt: skip
    """Mean next-token negative log-likelihood over ``data`` (``len`` + ``get_batch``, e.g. non-overlapping
    :class:`masklab.data.lm.LMWindows`), in eval mode, deterministically in order. With ``deadline`` (a
    ``time.monotonic()`` value) it stops after the first batch that ends past it (``tokens`` says how many).

    Returns ``{"loss": nats per token, "perplexity": exp(loss), "bits_per_token": loss / ln 2, "tokens": n}``.
    """
    was_training = model.training
    model.eval()
    device = model.tok_embed.weight.device
    total, count = 0.0, 0
    try:
        for b, start in enumerate(range(0, len(data), batch_size)):
            if (max_batches is not None and b >= max_batches) or (b and deadline and time.monotonic() >= deadline):
                break
            batch = data.get_batch(torch.arange(start, min(start + batch_size, len(data))))
            ids = batch["ids"].to(device)  # (B, T + 1)
            logits = model(ids[:, :-1])  # (B, T, V)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no evaluation windows: the data is empty")
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_token": loss / math.log(2), "tokens": count}
