"""Hugging Face RoBERTa <-> masklab: ``RobertaForMaskedLM`` folders onto :class:`~masklab.models.mlm.BertForMLM`.

RoBERTa (Liu et al. 2019) is BERT's architecture with three differences the converter bridges:

- positions start after the padding id: real tokens read ``pad_id + 1 + k`` (``k`` = real tokens before them),
  padded ones ``pad_id`` (fairseq ``make_positions``): :class:`~masklab.models.mlm.bert.BertConfig`
  ``positions="roberta"``; ``max_position_embeddings`` (514 for 512 tokens) is the table's size;
- no token types in the released checkpoints (``type_vocab_size=1``; any size is carried);
- its MLM head is ``lm_head.{dense, layer_norm, decoder, bias}`` and its tokenizer a byte-level BPE
  (``vocab.json`` + ``merges.txt`` or ``tokenizer.json``; :meth:`masklab.tokenizers.text.TextTokenizer.load`).

Every tensor the model does not use is reported; a config masklab cannot represent is refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from masklab.interop.hf.bert import (
    BERT_DEFAULTS,
    HFMaskedLM,
    _common_config,
    common_config_to_hf,
    mlm_from_hf_tensors,
    mlm_state_to_hf,
    read_hf_folder,
    save_hf_folder,
)
from masklab.models.mlm.bert import BertConfig
from masklab.models.mlm.model import BertForMLM, MLMConfig

ROBERTA_MLM = HFMaskedLM(
    architecture="RobertaForMaskedLM",
    prefix="roberta.",
    head={
        "lm_head.dense.weight": "head.dense.weight",
        "lm_head.dense.bias": "head.dense.bias",
        "lm_head.layer_norm.weight": "head.norm.weight",
        "lm_head.layer_norm.bias": "head.norm.bias",
        "lm_head.bias": "head.bias",
    },
    decoder_weight="lm_head.decoder.weight",
    decoder_bias="lm_head.decoder.bias",
)
ROBERTA_MASK_ID = 50264  # <mask> of roberta-base's vocabulary
# transformers' RobertaConfig defaults (roberta-base's own config.json sets layer_norm_eps 1e-5 and 514 positions)
ROBERTA_DEFAULTS = {**BERT_DEFAULTS, "vocab_size": 50265, "pad_token_id": 1}


def roberta_config_from_hf(hf: Mapping) -> BertConfig:
    """An HF ``RobertaConfig`` dict -> :class:`BertConfig` with ``positions="roberta"``."""
    if hf.get("model_type") != "roberta":
        raise ValueError(f"expected an HF RoBERTa config (model_type 'roberta'), got {hf.get('model_type')!r}")
    values = {**ROBERTA_DEFAULTS, **hf}
    if values["pad_token_id"] is None:
        raise ValueError("HF RoBERTa config pad_token_id=None is not supported: RoBERTa's positions start after it")
    return BertConfig(**_common_config(values, "RoBERTa", ROBERTA_DEFAULTS), positions="roberta")


def roberta_config_to_hf(cfg: BertConfig, tie_embeddings: bool = True, tokenizer: Any = None) -> dict[str, Any]:
    """:class:`BertConfig` (``positions="roberta"``) -> an HF ``config.json`` dict for ``RobertaForMaskedLM``.

    ``bos_token_id`` / ``eos_token_id`` are ``tokenizer``'s ``<s>`` / ``</s>`` (its cls / sep roles), None where
    it has none or no tokenizer is given: ``RobertaConfig``'s defaults (0, 2) are roberta-base's ids, and name
    ``<pad>`` and ``<s>`` in a vocabulary masklab trained."""
    if cfg.positions != "roberta":
        raise ValueError(f"BertConfig.positions={cfg.positions!r}: only positions='roberta' exports as RoBERTa")
    return {
        "architectures": [ROBERTA_MLM.architecture],
        "model_type": "roberta",
        **common_config_to_hf(cfg, tie_embeddings),
        "bos_token_id": None if tokenizer is None else tokenizer.role_id("cls"),
        "eos_token_id": None if tokenizer is None else tokenizer.role_id("sep"),
    }


def load_roberta_mlm(
    folder: str | Path, *, mask_id: int | None = None, **overrides: Any
) -> tuple[BertForMLM, list[str]]:
    """Load an HF ``RobertaForMaskedLM`` / ``RobertaModel`` folder (config.json + model.safetensors).

    ``mask_id`` defaults to roberta-base's ``<mask>`` (50264) when the vocabulary has it; pass the tokenizer's.
    Returns the model and every HF key left unused.
    """
    hf_config, tensors = read_hf_folder(folder)
    bert_cfg = roberta_config_from_hf(hf_config)
    if mask_id is None:
        if bert_cfg.vocab_size <= ROBERTA_MASK_ID:
            raise ValueError(f"{folder}: pass mask_id (the tokenizer's <mask> id) for a {bert_cfg.vocab_size}-id vocab")
        mask_id = ROBERTA_MASK_ID
    tie = bool(hf_config.get("tie_word_embeddings", True))
    mlm_cfg = MLMConfig(bert=bert_cfg, mask_id=mask_id, tie_embeddings=tie, **overrides)
    try:
        return mlm_from_hf_tensors(tensors, bert_cfg, mlm_cfg, ROBERTA_MLM)
    except ValueError as err:
        raise ValueError(f"{folder}: {err}") from None


def save_roberta_mlm(model: BertForMLM, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write an HF ``RobertaForMaskedLM`` folder that ``transformers`` loads with ``from_pretrained``."""
    hf_config = roberta_config_to_hf(model.config.bert, model.config.tie_embeddings, tokenizer)
    tensors = mlm_state_to_hf(model, ROBERTA_MLM)
    return save_hf_folder(folder, hf_config, tensors, tokenizer, model.config.bert.vocab_size)
