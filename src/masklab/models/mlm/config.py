"""The BERT-MLM config (encoder shape + how it is trained) and the named sizes.

Mask polarity: ``masked: bool (B, L)`` True = hidden / to be predicted; special tokens and padding never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

from masklab.core.contract import ModelConfig, preset_config
from masklab.masks.strategies import resolve
from masklab.models.mlm.bert import BertConfig

# Google's BERT miniatures (Turc et al. 2019) and BERT-base; mlp_hidden (intermediate) = 4 * dim. BertConfig fields.
PRESETS: dict[str, dict[str, Any]] = {
    "bert-tiny": {"dim": 128, "depth": 2, "heads": 2},
    "bert-mini": {"dim": 256, "depth": 4, "heads": 4},
    "bert-small": {"dim": 512, "depth": 4, "heads": 8},
    "bert-base": {"dim": 768, "depth": 12, "heads": 12},
}

Masking = Literal["bernoulli", "random", "whole_word", "span"]
MASKINGS = ("bernoulli", "random", "whole_word", "span")
SpanUnit = Literal["word", "token"]
# Fields every saved MLMConfig has had (to_dict writes them all; presets and the CLI pass a few of them): a
# mapping with all of them and no span_unit is a config saved before span_unit existed.
_SAVED_BEFORE_SPAN_UNIT = frozenset(
    {"bert", "mask_id", "special_ids", "replace_mask", "replace_random", "masking", "span_p", "span_max", "task",
     "num_labels", "pooling", "classifier_dropout"}
)  # fmt: skip


@dataclass(frozen=True)
class MLMConfig(ModelConfig):
    """A BERT encoder plus how it is trained.

    ``masking``: ``bernoulli`` (each token with probability ``mask_ratio``: BERT/HF collator), ``random``
    (exactly ``n - int(n * (1 - mask_ratio))`` of each row's ``n`` maskable tokens), ``whole_word`` (all pieces
    of sampled words), ``span`` (SpanBERT geometric spans, ``span_p``/``span_max``). Of the masked tokens
    ``replace_mask`` become ``mask_id``, ``replace_random`` a random non-special token, the rest stay unchanged:
    one draw per token, except ``span`` with ``span_unit="word"`` (one draw per span). ``whole_word`` draws per
    token, as Google BERT's whole-word masking does.

    ``span_unit`` (``span`` only): ``"word"`` (the default: SpanBERT, Joshi et al. 2020, Sec. 3.1) counts span
    lengths in whole words of the batch's ``word_ids`` (tokens when a batch has none), hides whole words,
    gives every row with a maskable token at least one, and draws the 80/10/10 treatment once per span (a run
    of hidden tokens; touching spans merge, as SpanBERT's ``merge_intervals`` does); ``"token"`` is masklab's
    ``span`` before this field: spans of tokens that may cut words, ``round(mask_ratio * n)`` per row (none for
    n <= 3) and a draw per token. A saved config without the field (:meth:`from_dict`) predates it and keeps
    ``"token"``, so its run resumes with the same masks; ``to_dict`` writes the field only for ``"word"`` spans.
    ``special_ids`` are never masked nor drawn as random tokens. ``task="classify"`` trains the
    ``num_labels``-way head on ``pooling``. Every ``masking`` resolves through :mod:`masklab.masks.strategies`.
    ``tie_embeddings=False`` gives the MLM head its own ``V x D`` output matrix instead of the input embeddings
    (HF ``tie_word_embeddings=False``).
    """

    nested: ClassVar[Mapping[str, type]] = {"bert": BertConfig}

    bert: BertConfig
    mask_id: int
    special_ids: tuple[int, ...] = ()
    mask_ratio: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1
    masking: Masking = "bernoulli"
    span_p: float = 0.2
    span_max: int = 10
    span_unit: SpanUnit = "word"
    task: Literal["mlm", "classify"] = "mlm"
    num_labels: int = 0
    pooling: Literal["mean", "cls"] = "mean"
    classifier_dropout: float = 0.1
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "special_ids", tuple(sorted({int(i) for i in self.special_ids})))
        problems = []
        if not 0 <= self.mask_id < self.bert.vocab_size:
            problems.append(f"mask_id={self.mask_id} is outside the vocabulary of {self.bert.vocab_size}")
        if not 0 < self.mask_ratio < 1:
            problems.append(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.replace_mask < 0 or self.replace_random < 0 or self.replace_mask + self.replace_random > 1:
            problems.append(
                f"replace_mask + replace_random must lie in [0, 1], got {self.replace_mask}, {self.replace_random}"
            )
        try:
            resolve(self.masking, allowed=MASKINGS, what="masking")
        except ValueError as err:
            problems.append(str(err))
        if self.span_unit not in ("word", "token"):
            problems.append(f"span_unit must be word or token, got {self.span_unit!r}")
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

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | MLMConfig) -> MLMConfig:
        """As :meth:`ModelConfig.from_dict`; runs saved before ``mask_ratio`` spell it ``mask_rate``. A saved
        ``span`` config without ``span_unit`` (it has every other field a saved config has) predates it: it
        gets ``"token"``, the masking it was trained with. A partial mapping (presets) gets the default."""
        if isinstance(values, Mapping) and "mask_rate" in values:
            if "mask_ratio" in values:
                raise ValueError("give mask_ratio or its old name mask_rate, not both")
            values = {("mask_ratio" if k == "mask_rate" else k): v for k, v in values.items()}
        if (
            isinstance(values, Mapping)
            and "span_unit" not in values
            and values.get("masking") == "span"
            and set(values) >= _SAVED_BEFORE_SPAN_UNIT
        ):
            values = {**values, "span_unit": "token"}
        return super().from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """As :meth:`ModelConfig.to_dict`, without ``span_unit`` unless it is ``"word"`` with ``span`` masking:
        a config that doesn't use it (or keeps the original ``"token"``) saves exactly as before the field, so
        runs saved then still pass the resume check's comparison of configs."""
        values = super().to_dict()
        if self.masking != "span" or self.span_unit == "token":
            del values["span_unit"]
        return values


def mlm_preset(name: str, **overrides: Any) -> MLMConfig:
    """:data:`PRESETS` ``name`` with ``overrides``: BERT fields (``vocab_size`` is required, ``dim``, ...) go to
    the encoder, the rest (``mask_id`` is required, ``masking``, ...) to the :class:`MLMConfig`."""
    bert_fields = {f.name for f in fields(BertConfig)}
    bert = {k: v for k, v in overrides.items() if k in bert_fields}
    rest = {k: v for k, v in overrides.items() if k not in bert_fields}
    if "vocab_size" not in bert or "mask_id" not in rest:
        raise ValueError("an MLM preset needs vocab_size and mask_id (they come from the tokenizer)")
    return MLMConfig.from_dict({"bert": preset_config(BertConfig, PRESETS, name, **bert), **rest})
