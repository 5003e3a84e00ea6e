"""Hugging Face BERT <-> masklab: ``BertModel`` / ``BertForMaskedLM`` folders onto :class:`~masklab.models.mlm.Bert`
and :class:`~masklab.models.mlm.BertForMLM`, and back.

Separate query/key/value Linear layers are fused into our one ``qkv`` projection (rows ``[q; k; v]``, each
split into heads the same way HF splits them). A config masklab cannot represent is refused with the field
named; tensors left unused are returned so a caller can report them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masklab.core.io import atomic_write_json, save_checkpoint
from masklab.models.mlm import BertForMLM, MLMConfig
from masklab.models.mlm.bert import BertConfig

HF_WEIGHTS = "model.safetensors"
HF_CONFIG = "config.json"

_EMBEDDING_KEYS = {
    "embeddings.word_embeddings.weight": "embeddings.word.weight",
    "embeddings.position_embeddings.weight": "embeddings.position.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
}
_LAYER_KEYS = {  # HF name inside encoder.layer.{i}. -> ours inside encoder.blocks.{i}.
    "attention.output.dense": "attn.proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "output.LayerNorm": "norm2",
}


def bert_config_from_hf(hf: Mapping) -> BertConfig:
    """An HF ``BertConfig`` dict (``config.json``) -> :class:`BertConfig`; unsupported variants are errors."""
    if hf.get("model_type") != "bert":
        raise ValueError(f"expected an HF BERT config (model_type 'bert'), got model_type={hf.get('model_type')!r}")
    unsupported = {
        "hidden_act": ("gelu", hf.get("hidden_act", "gelu")),
        "position_embedding_type": ("absolute", hf.get("position_embedding_type", "absolute")),
        "is_decoder": (False, bool(hf.get("is_decoder", False))),
    }
    for name, (want, got) in unsupported.items():
        if got != want:
            raise ValueError(f"HF BERT config {name}={got!r} is not supported (masklab BERT needs {want!r})")
    return BertConfig(
        vocab_size=int(hf["vocab_size"]),
        dim=int(hf["hidden_size"]),
        depth=int(hf["num_hidden_layers"]),
        heads=int(hf["num_attention_heads"]),
        intermediate=int(hf["intermediate_size"]),
        max_len=int(hf.get("max_position_embeddings", 512)),
        type_vocab_size=int(hf.get("type_vocab_size", 2)),
        pad_id=int(hf.get("pad_token_id") or 0),
        norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        dropout=float(hf.get("hidden_dropout_prob", 0.1)),
        attn_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)),
    )


def bert_config_to_hf(cfg: BertConfig) -> dict:
    """:class:`BertConfig` -> an HF ``config.json`` dict for ``BertForMaskedLM``."""
    if cfg.norm_first:
        raise ValueError("a pre-norm (norm_first=True) BERT has no Hugging Face BertModel equivalent to export to")
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.heads,
        "intermediate_size": cfg.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.attn_dropout,
        "max_position_embeddings": cfg.max_len,
        "type_vocab_size": cfg.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": cfg.norm_eps,
        "pad_token_id": cfg.pad_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


def bert_state_from_hf(hf_state: Mapping[str, Tensor], cfg: BertConfig) -> tuple[dict[str, Tensor], list[str]]:
    """HF ``BertModel`` tensors (an optional ``bert.`` prefix is stripped) -> :class:`Bert` state dict.

    Returns the state dict and the HF keys it did not use (pooler, MLM head, ``position_ids`` ...); missing
    encoder keys are a ``ValueError``.
    """
    src = {k.removeprefix("bert."): v for k, v in hf_state.items()}
    used: set[str] = set()

    def take(name: str) -> Tensor:
        if name not in src:
            raise ValueError(f"HF weights lack {name!r} (is this a BERT checkpoint with {cfg.depth} layers?)")
        used.add(name)
        return src[name]

    state = {ours: take(theirs) for theirs, ours in _EMBEDDING_KEYS.items()}
    for i in range(cfg.depth):
        hf, me = f"encoder.layer.{i}.", f"encoder.blocks.{i}."
        for part in ("weight", "bias"):
            qkv = [take(f"{hf}attention.self.{n}.{part}") for n in ("query", "key", "value")]
            state[f"{me}attn.qkv.{part}"] = torch.cat(qkv, dim=0)  # (3D, D) / (3D,): rows [q; k; v]
            for theirs, ours in _LAYER_KEYS.items():
                state[f"{me}{ours}.{part}"] = take(f"{hf}{theirs}.{part}")
    unused = sorted(k for k, v in hf_state.items() if k.removeprefix("bert.") not in used)
    return state, unused


def bert_state_to_hf(state: Mapping[str, Tensor], cfg: BertConfig, prefix: str = "bert.") -> dict[str, Tensor]:
    """:class:`Bert` state dict -> HF ``BertModel`` tensor names (under ``prefix``), q/k/v split again."""
    out = {f"{prefix}{theirs}": state[ours] for theirs, ours in _EMBEDDING_KEYS.items()}
    for i in range(cfg.depth):
        hf, me = f"{prefix}encoder.layer.{i}.", f"encoder.blocks.{i}."
        for part in ("weight", "bias"):
            q, k, v = state[f"{me}attn.qkv.{part}"].chunk(3, dim=0)
            for name, tensor in (("query", q), ("key", k), ("value", v)):
                out[f"{hf}attention.self.{name}.{part}"] = tensor
            for theirs, ours in _LAYER_KEYS.items():
                out[f"{hf}{theirs}.{part}"] = state[f"{me}{ours}.{part}"]
    return out


def read_hf_folder(folder: str | Path) -> tuple[dict, dict[str, Tensor]]:
    """``config.json`` and ``model.safetensors`` of an HF model folder (never a pickled ``pytorch_model.bin``)."""
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"HF model folder {folder} does not exist")
    config_path, weights = folder / HF_CONFIG, folder / HF_WEIGHTS
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no {HF_CONFIG} (expected an HF model folder)")
    if not weights.is_file():
        extra = (
            " (pytorch_model.bin is pickle, which masklab never loads)"
            if (folder / "pytorch_model.bin").exists()
            else ""
        )
        raise FileNotFoundError(f"{folder} has no {HF_WEIGHTS}{extra}")
    try:
        hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from err
    return hf_config, load_file(str(weights))


def load_bert_mlm(folder: str | Path, *, mask_id: int | None = None, **overrides: Any) -> tuple[BertForMLM, list[str]]:
    """Load an HF ``BertForMaskedLM`` / ``BertModel`` folder (config.json + model.safetensors).

    Without ``cls.predictions.*`` tensors (a ``BertModel``) the MLM head keeps its fresh init. ``mask_id``
    defaults to 103 (uncased BERT's [MASK]); pass the tokenizer's. Returns the model and the HF keys left
    unused (e.g. the pooler), so a caller can report them.
    """
    hf_config, tensors = read_hf_folder(folder)
    bert_cfg = bert_config_from_hf(hf_config)
    mlm_cfg = MLMConfig(bert=bert_cfg, mask_id=103 if mask_id is None else mask_id, **overrides)
    model = BertForMLM(mlm_cfg)
    state, unused = bert_state_from_hf(tensors, bert_cfg)
    head = {
        "cls.predictions.transform.dense.weight": "head.dense.weight",
        "cls.predictions.transform.dense.bias": "head.dense.bias",
        "cls.predictions.transform.LayerNorm.weight": "head.norm.weight",
        "cls.predictions.transform.LayerNorm.bias": "head.norm.bias",
        "cls.predictions.bias": "head.bias",
    }
    state = {f"bert.{k}": v for k, v in state.items()}
    state.update({ours: tensors[theirs] for theirs, ours in head.items() if theirs in tensors})
    # The decoder is tied to the word embeddings (and its bias to cls.predictions.bias): nothing to load.
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    unused = [k for k in unused if k not in head and k not in tied]
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {v for v in head.values()} | {"classifier.weight", "classifier.bias"}
    if unexpected or set(missing) - allowed_missing:
        raise ValueError(f"{folder}: weights do not fit (missing {missing}, unexpected {unexpected})")
    return model, unused


def bert_mlm_state_to_hf(model: BertForMLM) -> dict[str, Tensor]:
    """Tensors named as HF ``BertForMaskedLM`` saves them (tied decoder weights left out, as HF does)."""
    ours = {k.removeprefix("bert."): v for k, v in model.state_dict().items() if k.startswith("bert.")}
    out = bert_state_to_hf(ours, model.config.bert, prefix="bert.")
    out.update(
        {
            "cls.predictions.transform.dense.weight": model.head.dense.weight,
            "cls.predictions.transform.dense.bias": model.head.dense.bias,
            "cls.predictions.transform.LayerNorm.weight": model.head.norm.weight,
            "cls.predictions.transform.LayerNorm.bias": model.head.norm.bias,
            "cls.predictions.bias": model.head.bias,
        }
    )
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}


def save_bert_mlm(model: BertForMLM, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write an HF ``BertForMaskedLM`` folder: ``config.json``, ``model.safetensors`` (atomic writes) and,
    if given, the tokenizer's ``tokenizer.json``; ``transformers`` loads it with ``from_pretrained``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hf_config = bert_config_to_hf(model.config.bert)
    if tokenizer is not None:
        if tokenizer.vocab_size != model.config.bert.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model {model.config.bert.vocab_size}")
        tokenizer.save(folder)
    # transformers refuses safetensors without format=pt metadata; the hash entry is masklab's integrity check.
    save_checkpoint(folder / HF_WEIGHTS, bert_mlm_state_to_hf(model), {"format": "pt"})
    atomic_write_json(folder / HF_CONFIG, hf_config)
    return folder
