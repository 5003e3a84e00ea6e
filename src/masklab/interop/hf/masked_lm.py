"""Load any supported HF masked-LM folder (BERT or RoBERTa) with its tokenizer, ready to fill masks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from masklab.interop.hf.bert import BERT_MLM, HF_CONFIG, HF_WEIGHTS, load_bert_mlm, read_hf_folder, save_bert_mlm
from masklab.interop.hf.roberta import ROBERTA_MLM, load_roberta_mlm, save_roberta_mlm
from masklab.models.mlm.model import BertForMLM
from masklab.tokenizers.text import TextTokenizer

FAMILIES = {"bert": BERT_MLM, "roberta": ROBERTA_MLM}


def load_hf_mlm(folder: str | Path, *, mask_id: int | None = None, **overrides: Any) -> tuple[BertForMLM, list[str]]:
    """An HF BERT or RoBERTa (masked-LM or bare encoder) folder, by its ``model_type``; returns the model and
    every HF tensor it did not use."""
    hf_config, _ = read_hf_folder(folder)
    if hf_config.get("model_type") == "roberta":
        return load_roberta_mlm(folder, mask_id=mask_id, **overrides)
    return load_bert_mlm(folder, mask_id=mask_id, **overrides)


def save_hf_mlm(model: BertForMLM, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write ``model`` as the HF family its config describes (RoBERTa positions -> RoBERTa, else BERT)."""
    if model.config.bert.positions == "roberta":
        return save_roberta_mlm(model, folder, tokenizer)
    return save_bert_mlm(model, folder, tokenizer)


def load_hf_masked_lm(folder: str | Path) -> tuple[BertForMLM, TextTokenizer, list[str]]:
    """``(model, tokenizer, unused HF tensors)`` of an HF ``BertForMaskedLM`` / ``RobertaForMaskedLM`` folder
    (config.json, model.safetensors with the MLM head, and tokenizer.json, vocab.txt or vocab.json + merges.txt).

    A folder without MLM head tensors (a bare encoder) cannot fill masks and is refused.
    """
    from safetensors import safe_open

    folder = Path(folder)
    config = json.loads((folder / HF_CONFIG).read_text(encoding="utf-8"))
    family = FAMILIES.get(config.get("model_type"))
    if family is None:
        raise ValueError(f"{folder}: model_type {config.get('model_type')!r} is not one of {sorted(FAMILIES)}")
    if not (folder / HF_WEIGHTS).is_file():
        raise FileNotFoundError(f"{folder} has no {HF_WEIGHTS} (only safetensors weights are loaded)")
    with safe_open(str(folder / HF_WEIGHTS), "pt") as f:
        if not set(family.head) <= set(f.keys()):
            raise ValueError(f"{folder} holds an encoder without an MLM head ({family.architecture}): it cannot fill")
    tokenizer = TextTokenizer.load(folder)
    if tokenizer.vocab_size != int(config.get("vocab_size", -1)):
        raise ValueError(f"vocabulary mismatch: {folder} tokenizer has {tokenizer.vocab_size} ids, "
                         f"the model {config.get('vocab_size')}")  # fmt: skip
    model, unused = load_hf_mlm(folder, mask_id=tokenizer.mask_id, special_ids=tokenizer.special_ids)
    return model, tokenizer, unused
