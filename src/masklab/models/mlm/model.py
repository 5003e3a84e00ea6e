"""BERT masked language modeling: dynamic 80/10/10 masking, a sparse MLM head, and a classification head.

Shape legend: ``B`` batch, ``L`` tokens, ``D`` width, ``V`` vocabulary, ``M`` masked positions in the batch,
``C`` classes. Masks: ``masked: bool (B, L)`` True = hidden / to be predicted; ``padding: bool (B, L)`` True =
padded. Special tokens and padding are never masked.

The algorithm as code (Devlin et al. 2019, Sec. 3.1; RoBERTa's dynamic masking, Liu et al. 2019, Sec. 4.1):
``choose_masked`` (a fresh draw every batch) -> ``corrupt`` (80% [MASK], 10% random token, 10% unchanged)
-> ``Bert`` -> gather the ``M`` masked rows -> head transform -> tied vocabulary projection -> cross-entropy.
Gathering *before* the head is the sparse prediction of RoBERTa/fairseq (``masked_tokens``) and NVIDIA's
BERT: the ``D x V`` projection runs on ~15% of the tokens, the largest saving of a CPU training step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklab.core.contract import LossOutput
from masklab.masks.generators import bernoulli_masking, random_masking, span_masking, whole_word_masking
from masklab.masks.ops import first_token, mean_pool
from masklab.models.mlm.bert import Bert, BertConfig, init_bert_weights
from masklab.nn.attention import Backend
from masklab.nn.cpu_linear import Linear, linear

Masking = Literal["bernoulli", "random", "whole_word", "span"]
MASKINGS = ("bernoulli", "random", "whole_word", "span")


@dataclass(frozen=True)
class MLMConfig:
    """A BERT encoder plus how it is trained.

    ``masking``: ``bernoulli`` (each token with probability ``mask_rate``: BERT/HF collator), ``random``
    (exactly ``n - int(n * (1 - mask_rate))`` of each row's ``n`` maskable tokens), ``whole_word`` (all pieces
    of sampled words), ``span`` (SpanBERT geometric spans, ``span_p``/``span_max``). Of the masked tokens
    ``replace_mask`` become ``mask_id``, ``replace_random`` a random non-special token, the rest stay unchanged.
    ``special_ids`` are never masked nor drawn as random tokens. ``task="classify"`` trains the
    ``num_labels``-way head on ``pooling``.
    """

    bert: BertConfig
    mask_id: int
    special_ids: tuple[int, ...] = ()
    mask_rate: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1
    masking: Masking = "bernoulli"
    span_p: float = 0.2
    span_max: int = 10
    task: Literal["mlm", "classify"] = "mlm"
    num_labels: int = 0
    pooling: Literal["mean", "cls"] = "mean"
    classifier_dropout: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "special_ids", tuple(sorted({int(i) for i in self.special_ids})))
        problems = []
        if not 0 <= self.mask_id < self.bert.vocab_size:
            problems.append(f"mask_id={self.mask_id} is outside the vocabulary of {self.bert.vocab_size}")
        if not 0 < self.mask_rate < 1:
            problems.append(f"mask_rate must be in (0, 1), got {self.mask_rate}")
        if self.replace_mask < 0 or self.replace_random < 0 or self.replace_mask + self.replace_random > 1:
            problems.append(
                f"replace_mask + replace_random must lie in [0, 1], got {self.replace_mask}, {self.replace_random}"
            )
        if self.masking not in MASKINGS:
            problems.append(f"masking must be one of {', '.join(MASKINGS)}, got {self.masking!r}")
        if self.task not in ("mlm", "classify"):
            problems.append(f"task must be mlm or classify, got {self.task!r}")
        if self.task == "classify" and self.num_labels < 2:
            problems.append(f"task=classify needs num_labels >= 2, got {self.num_labels}")
        if self.pooling not in ("mean", "cls"):
            problems.append(f"pooling must be mean or cls, got {self.pooling!r}")
        if len(self.special_ids) >= self.bert.vocab_size:
            problems.append("every token is special: nothing left to draw random replacements from")
        if problems:
            raise ValueError("invalid MLMConfig: " + "; ".join(problems))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["special_ids"] = list(self.special_ids)
        return out

    @classmethod
    def from_config(cls, values: dict) -> MLMConfig:
        values = {k: v for k, v in values.items() if k != "kind"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MLMConfig fields {unknown}; known: {sorted(known)}")
        if "bert" not in values:
            raise ValueError("an MLM model config needs a 'bert' entry")
        bert = values["bert"] if isinstance(values["bert"], BertConfig) else BertConfig.from_config(values["bert"])
        return cls(**{**values, "bert": bert, "special_ids": tuple(values.get("special_ids", ()))})


# ---------------------------------------------------------------------------------------------- masking
def choose_masked(
    cfg: MLMConfig, ids: Tensor, padding: Tensor, word_ids: Tensor | None, generator: torch.Generator
) -> Tensor:
    """Pick the positions to predict -> ``masked`` bool (B, L), never special tokens or padding.

    ``ids`` long (B, L); ``padding`` bool (B, L) True = padded; ``word_ids`` long (B, L) (-1 = not in a word),
    required for whole-word masking. Random numbers come from ``generator`` on CPU.
    """
    batch, length = ids.shape
    special = torch.isin(ids, torch.tensor(cfg.special_ids, dtype=ids.dtype, device=ids.device))
    # The generators call excluded positions "padding": they are never hidden.
    excluded = (padding | special).cpu()  # (B, L)
    if cfg.masking == "bernoulli":
        masked = bernoulli_masking(batch, length, cfg.mask_rate, generator=generator, padding=excluded).masked
    elif cfg.masking == "random":
        masked = random_masking(batch, length, cfg.mask_rate, generator=generator, padding=excluded).masked
    elif cfg.masking == "span":
        masked = span_masking(
            batch, length, cfg.mask_rate, generator=generator, p=cfg.span_p, max_span=cfg.span_max, padding=excluded
        ).masked
    else:
        if word_ids is None:
            raise ValueError("whole-word masking needs word_ids in the batch")
        words = word_ids.cpu().masked_fill(excluded, -1)
        masked = whole_word_masking(words, cfg.mask_rate, generator=generator).masked
    return masked.to(ids.device) & ~(padding | special)


def corrupt(cfg: MLMConfig, ids: Tensor, masked: Tensor, generator: torch.Generator) -> Tensor:
    """BERT's 80/10/10 replacement of the masked positions -> encoder input ids ``(B, L)``.

    One uniform draw per position decides [MASK] / random token / unchanged; random tokens are uniform over
    the non-special vocabulary (BERT draws from the whole vocabulary; a random [CLS] only adds noise).
    """
    u = torch.rand(ids.shape, generator=generator).to(ids.device)  # (B, L)
    allowed = torch.ones(cfg.bert.vocab_size, dtype=torch.bool)
    allowed[list(cfg.special_ids)] = False
    pool = torch.nonzero(allowed).flatten()  # (V',) non-special ids
    random_ids = pool[torch.randint(len(pool), ids.shape, generator=generator)].to(ids.device)  # (B, L)
    to_mask = masked & (u < cfg.replace_mask)
    to_random = masked & (u >= cfg.replace_mask) & (u < cfg.replace_mask + cfg.replace_random)
    out = torch.where(to_mask, torch.full_like(ids, cfg.mask_id), ids)
    return torch.where(to_random, random_ids, out)


# ------------------------------------------------------------------------------------------------ heads
class MLMHead(nn.Module):
    """BERT's prediction head: dense + GELU + LayerNorm, then the tied ``D x V`` projection plus its own bias."""

    def __init__(self, dim: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.dense = Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: Tensor, word_weight: Tensor) -> Tensor:
        """``h (M, D)``, ``word_weight (V, D)`` (the input embedding matrix) -> logits ``(M, V)``."""
        return linear(self.norm(F.gelu(self.dense(h))), word_weight, self.bias)


class BertForMLM(nn.Module):
    """BERT with a sparse MLM head (and, for ``task="classify"``, a classification head).

    ``training_loss`` expects ``batch = {"ids", "padding", "word_ids"[, "labels"]}`` as built by
    :class:`masklab.data.text.TextBlocksData`.
    """

    def __init__(self, cfg: MLMConfig, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.cfg = cfg
        self.bert = Bert(cfg.bert, backend)
        self.head = MLMHead(cfg.bert.dim, cfg.bert.vocab_size, cfg.bert.norm_eps)
        self.classifier = Linear(cfg.bert.dim, cfg.num_labels) if cfg.num_labels else None
        self.classifier_drop = nn.Dropout(cfg.classifier_dropout)
        init_bert_weights(self)

    # -------------------------------------------------------------- config
    @classmethod
    def from_config(cls, config: dict) -> BertForMLM:
        return cls(MLMConfig.from_config(config))

    def config(self) -> dict:
        """The ``model_config`` dict ``fit`` saves (``kind`` included)."""
        return {"kind": "mlm", **self.cfg.to_dict()}

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
        return mean_pool(hidden, padding) if self.cfg.pooling == "mean" else first_token(hidden, padding)

    def classify(self, ids: Tensor, padding: Tensor | None = None) -> Tensor:
        """Class logits ``(B, C)``."""
        if self.classifier is None:
            raise ValueError("this model has no classification head (num_labels=0); fine-tune it first")
        pooled = self.pooled(self(ids, padding), padding)
        return self.classifier(self.classifier_drop(pooled))

    # -------------------------------------------------------------- training
    def mask_batch(self, batch: dict, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(corrupted input ids ``(B, L)``, ``masked`` bool (B, L)) for one batch: a new draw each call."""
        masked = choose_masked(self.cfg, batch["ids"], batch["padding"], batch.get("word_ids"), generator)
        return corrupt(self.cfg, batch["ids"], masked, generator), masked

    def mlm_loss(self, batch: dict, generator: torch.Generator) -> LossOutput:
        inputs, masked = self.mask_batch(batch, generator)
        logits = self.predict_masked(self(inputs, batch["padding"]), masked)  # (M, V)
        targets = batch["ids"][masked]  # (M,)
        # Mean CE over the M predicted tokens == masked_loss(dense per-token CE, masked), without the B*L*V
        # logits. sum / clamp keeps an (unlikely) batch with nothing masked at loss 0 instead of NaN.
        loss = F.cross_entropy(logits, targets, reduction="sum") / max(targets.numel(), 1)
        acc = (logits.argmax(-1) == targets).float().sum() / max(targets.numel(), 1)
        return LossOutput(loss, {"mlm_acc": acc.detach(), "masked_frac": masked.float().mean()})

    def classify_loss(self, batch: dict) -> LossOutput:
        logits = self.classify(batch["ids"], batch["padding"])  # (B, C)
        loss = F.cross_entropy(logits, batch["labels"])
        return LossOutput(loss, {"acc": (logits.argmax(-1) == batch["labels"]).float().mean().detach()})

    def training_loss(self, batch: dict, generator: torch.Generator) -> LossOutput:
        if self.cfg.task == "classify":
            return self.classify_loss(batch)
        return self.mlm_loss(batch, generator)
