"""BERT masked language modeling: dynamic 80/10/10 masking, a sparse MLM head, and a classification head.

Shape legend: ``B`` batch, ``L`` tokens, ``D`` width, ``V`` vocabulary, ``M`` masked positions in the batch,
``C`` classes. Masks: ``masked: bool (B, L)`` True = hidden / to be predicted; ``padding: bool (B, L)`` True =
padded. Special tokens and padding are never masked.

The algorithm as code (Devlin et al. 2019, Sec. 3.1; RoBERTa's dynamic masking, Liu et al. 2019, Sec. 4.1):
``choose_masked`` (a fresh draw every batch; the kind resolves through :mod:`masklab.masks.strategies`)
-> ``corrupt`` (80% [MASK], 10% random token, 10% unchanged) -> ``Bert`` -> gather the ``M`` masked rows
-> head transform -> tied vocabulary projection -> cross-entropy.
Gathering *before* the head is the sparse prediction of RoBERTa/fairseq (``masked_tokens``) and NVIDIA's
BERT: the ``D x V`` projection runs on ~15% of the tokens, the largest saving of a CPU training step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput
from masklab.masks.ops import first_token, mean_pool
from masklab.masks.strategies import STRATEGIES, MaskRequest
from masklab.models.mlm.bert import Bert, init_bert_weights
from masklab.models.mlm.config import MLMConfig, mlm_preset
from masklab.nn.attention import Backend
from masklab.nn.cpu_linear import linear


# ---------------------------------------------------------------------------------------------- masking
def choose_masked(
    config: MLMConfig, ids: Tensor, padding: Tensor, word_ids: Tensor | None, generator: torch.Generator
) -> Tensor:
    """Pick the positions to predict -> ``masked`` bool (B, L), never special tokens or padding.

    ``ids`` long (B, L); ``padding`` bool (B, L) True = padded; ``word_ids`` long (B, L) (-1 = not in a word),
    required for whole-word masking. ``config.masking`` resolves through :mod:`masklab.masks.strategies`; random
    numbers come from ``generator`` on CPU.
    """
    batch, length = ids.shape
    special = torch.isin(ids, torch.tensor(config.special_ids, dtype=ids.dtype, device=ids.device))
    protected = padding | special  # (B, L) never hidden
    request = MaskRequest(
        batch, length, config.mask_ratio, protected=protected.cpu(), word_ids=word_ids, device=ids.device,
        options={"span_p": config.span_p, "span_max": config.span_max, "span_unit": config.span_unit},
    )  # fmt: skip
    return STRATEGIES[config.masking].draw(request, generator).masked & ~protected


def corrupt(config: MLMConfig, ids: Tensor, masked: Tensor, generator: torch.Generator) -> Tensor:
    """BERT's 80/10/10 replacement of the masked positions (bool (B, L), True = hidden) -> encoder input ids
    ``(B, L)``.

    One uniform draw per position decides [MASK] / random token / unchanged; with ``span`` masking and
    ``span_unit="word"`` every run of masked positions (a span; touching spans merge) takes the draw of its
    first position, so a span is all [MASK], all random tokens or all unchanged (SpanBERT's
    ``replacement="span"``). Random tokens are drawn per position, uniform over the non-special vocabulary
    (BERT draws from the whole vocabulary; a random [CLS] only adds noise).
    """
    u = torch.rand(ids.shape, generator=generator).to(ids.device)  # (B, L)
    if config.masking == "span" and config.span_unit == "word":
        positions = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape)  # (B, L)
        after_masked = F.pad(masked[:, :-1], (1, 0))  # (B, L) the previous position is masked
        run_start = torch.where(masked & ~after_masked, positions, 0).cummax(dim=1).values  # (B, L)
        u = u.gather(1, run_start)  # each masked position: the draw of its span's first position
    allowed = torch.ones(config.bert.vocab_size, dtype=torch.bool)
    allowed[list(config.special_ids)] = False
    pool = torch.nonzero(allowed).flatten()  # (V',) non-special ids
    random_ids = pool[torch.randint(len(pool), ids.shape, generator=generator)].to(ids.device)  # (B, L)
    to_mask = masked & (u < config.replace_mask)
    to_random = masked & (u >= config.replace_mask) & (u < config.replace_mask + config.replace_random)
    out = torch.where(to_mask, torch.full_like(ids, config.mask_id), ids)
    return torch.where(to_random, random_ids, out)


# ------------------------------------------------------------------------------------------------ heads
class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then a ``D x V`` projection plus its own bias.

    The projection is the input embedding matrix (tied, BERT's default) or, with ``tied=False``, the head's
    own ``decoder`` weight ``(V, D)``.
    """

    def __init__(self, dim: int, vocab_size: int, eps: float, tied: bool = True) -> None:
        super().__init__()
        self.dense = Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.decoder = None if tied else Linear(dim, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor, word_weight: Tensor) -> Tensor:
        """``h (M, D)``, ``word_weight (V, D)`` (the input embedding matrix, used when tied) -> logits ``(M, V)``."""
        weight = word_weight if self.decoder is None else self.decoder.weight
        return linear(self.norm(F.gelu(self.dense(h))), weight, self.bias)


@dataclass(frozen=True)
class MLMDraw:
    """One step's random draws: ``inputs`` long (B, L), the corrupted ids the encoder reads, and ``masked``
    bool (B, L), True = a position to predict."""

    inputs: Tensor
    masked: Tensor


class BertForMLM(nn.Module):
    """BERT with a sparse MLM head (and, for ``task="classify"``, a classification head).

    ``training_loss`` expects ``batch = {"ids", "padding", "word_ids"[, "labels"]}`` as built by
    :class:`masklab.data.text.TextBlocksData`.
    """

    kind: ClassVar[str] = "mlm"

    def __init__(self, config: MLMConfig, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config.bert, backend)
        self.head = MLMHead(config.bert.dim, config.bert.vocab_size, config.bert.norm_eps, config.tie_embeddings)
        self.classifier = Linear(config.bert.dim, config.num_labels) if config.num_labels else None
        self.classifier_drop = nn.Dropout(config.classifier_dropout)
        init_bert_weights(self)

    # -------------------------------------------------------------- config
    @classmethod
    def from_config(cls, config: MLMConfig | dict[str, Any]) -> BertForMLM:
        """An untrained model from a config or its dict (``config.json["model"]``)."""
        return cls(MLMConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> BertForMLM:
        """:data:`~masklab.models.mlm.config.PRESETS` ``name``; ``overrides`` must give ``vocab_size`` and
        ``mask_id`` and may set any BertConfig or MLMConfig field (see :func:`mlm_preset`)."""
        return cls(mlm_preset(name, **overrides))

    # -------------------------------------------------------------- forward pieces
    def forward(self, ids: Tensor, padding: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        """Encoder hidden states ``(B, L, D)`` for ``ids`` long (B, L); ``padding`` bool (B, L) True = padded."""
        return self.bert(ids, padding=padding, token_type_ids=token_type_ids)

    def predict_masked(self, hidden: Tensor, masked: Tensor) -> Tensor:
        """Vocabulary logits ``(M, V)`` at the ``masked`` positions (bool (B, L)), in row-major order."""
        return self.head(hidden[masked], self.bert.embeddings.word.weight)  # (M, D) -> (M, V)

    def pooled(self, hidden: Tensor, padding: Tensor | None) -> Tensor:
        """One vector per sequence ``(B, D)``: mean over real tokens, or the [CLS] state."""
        if padding is None:
            padding = torch.zeros(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return mean_pool(hidden, padding) if self.config.pooling == "mean" else first_token(hidden, padding)

    def embed(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """Pooled features ``(B, D)`` of ``ids`` long (B, L) (``config.pooling``); ``padding`` True = padded."""
        return self.pooled(self(ids, padding), padding)

    def classify(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """Class logits ``(B, C)``."""
        if self.classifier is None:
            raise ValueError("this model has no classification head (num_labels=0); fine-tune it first")
        return self.classifier(self.classifier_drop(self.embed(ids, padding)))

    # -------------------------------------------------------------- training
    def draw(self, batch: dict, generator: torch.Generator) -> MLMDraw:
        """This step's random draws, made eagerly on the host: a new mask and its 80/10/10 corruption."""
        masked = choose_masked(self.config, batch["ids"], batch["padding"], batch.get("word_ids"), generator)
        return MLMDraw(corrupt(self.config, batch["ids"], masked, generator), masked)

    def mlm_loss(self, batch: dict, drawn: MLMDraw) -> LossOutput:
        logits = self.predict_masked(self(drawn.inputs, batch["padding"]), drawn.masked)  # (M, V)
        targets = batch["ids"][drawn.masked]  # (M,)
        # Mean CE over the M predicted tokens == loss_on_masked(dense per-token CE, masked), without the B*L*V
        # logits. sum / clamp keeps an (unlikely) batch with nothing masked at loss 0 instead of NaN.
        count = torch.clamp(drawn.masked.sum(), min=1)
        loss = F.cross_entropy(logits, targets, reduction="sum") / count
        acc = (logits.argmax(-1) == targets).float().sum() / count
        return LossOutput(loss, {"mlm_acc": acc.detach(), "masked_frac": drawn.masked.float().mean()})

    def classify_loss(self, batch: dict) -> LossOutput:
        logits = self.classify(batch["ids"], batch["padding"])  # (B, C)
        loss = F.cross_entropy(logits, batch["labels"])
        return LossOutput(loss, {"acc": (logits.argmax(-1) == batch["labels"]).float().mean().detach()})

    def training_loss(self, batch: dict, generator: torch.Generator, *, drawn: MLMDraw | None = None) -> LossOutput:
        """``fit`` hook. ``drawn``: this step's :meth:`draw`, if made outside (``torch.compile`` cannot trace a
        ``torch.Generator``, so a compiled step takes its draws as an argument); drawn here otherwise."""
        if self.config.task == "classify":
            return self.classify_loss(batch)
        return self.mlm_loss(batch, self.draw(batch, generator) if drawn is None else drawn)
