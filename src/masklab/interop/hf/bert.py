"""Hugging Face BERT <-> masklab: ``BertModel`` / ``BertForMaskedLM`` folders onto :class:`~masklab.models.mlm.Bert`
and :class:`~masklab.models.mlm.BertForMLM`, and back.

Separate query/key/value Linear layers are fused into our one ``qkv`` projection (rows ``[q; k; v]``, each
split into heads the same way HF splits them). A config masklab cannot represent is refused with the field
named; tensors left unused are returned so a caller can report them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masklab.core.io import atomic_write_json, save_checkpoint
from masklab.interop.hf.shapes import load_checked
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
BERT_SHAPE_FIELDS = {  # a masklab parameter -> the config.json field behind each dimension (the last repeats)
    "embeddings.position": ("max_position_embeddings", "hidden_size"),
    "embeddings.token_type": ("type_vocab_size", "hidden_size"),
    "embeddings.word": ("vocab_size", "hidden_size"),
    "head.decoder": ("vocab_size", "hidden_size"),
    "head.bias": ("vocab_size",),
    "mlp.fc1": ("intermediate_size", "hidden_size"),
    "mlp.fc2": ("hidden_size", "intermediate_size"),
    ".": ("hidden_size",),
}
_LAYER_KEYS = {  # HF name inside encoder.layer.{i}. -> ours inside encoder.blocks.{i}.
    "attention.output.dense": "attn.proj",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "output.LayerNorm": "norm2",
}


# transformers' BertConfig defaults: a config.json without a field means this value, in HF and here
BERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "pad_token_id": 0,
    "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "position_embedding_type": "absolute", "is_decoder": False, "add_cross_attention": False,
}  # fmt: skip


def _common_config(hf: Mapping, family: str, defaults: Mapping[str, Any] = BERT_DEFAULTS) -> dict[str, Any]:
    """The BertConfig fields BERT and RoBERTa configs share, a missing field taking ``defaults`` (the HF config
    class's own); variants masklab cannot build are refused by name."""
    hf = {**defaults, **hf}
    unsupported = {
        "hidden_act": ("gelu", hf["hidden_act"]),
        "position_embedding_type": ("absolute", hf["position_embedding_type"]),
        "is_decoder": (False, bool(hf["is_decoder"])),
        "add_cross_attention": (False, bool(hf["add_cross_attention"])),
    }
    for name, (want, got) in unsupported.items():
        if got != want:
            raise ValueError(f"HF {family} config {name}={got!r} is not supported (masklab BERT needs {want!r})")
    pad = hf["pad_token_id"]
    return dict(
        vocab_size=int(hf["vocab_size"]),
        dim=int(hf["hidden_size"]),
        depth=int(hf["num_hidden_layers"]),
        heads=int(hf["num_attention_heads"]),
        intermediate=int(hf["intermediate_size"]),
        max_len=int(hf["max_position_embeddings"]),
        type_vocab_size=int(hf["type_vocab_size"]),
        pad_id=None if pad is None else int(pad),  # null: HF builds no padding row, so neither do we
        norm_eps=float(hf["layer_norm_eps"]),
        dropout=float(hf["hidden_dropout_prob"]),
        attn_dropout=float(hf["attention_probs_dropout_prob"]),
    )


def bert_config_from_hf(hf: Mapping) -> BertConfig:
    """An HF ``BertConfig`` dict (``config.json``) -> :class:`BertConfig`; unsupported variants are errors."""
    if hf.get("model_type") != "bert":
        raise ValueError(f"expected an HF BERT config (model_type 'bert'), got model_type={hf.get('model_type')!r}")
    return BertConfig(**_common_config(hf, "BERT"))


def common_config_to_hf(cfg: BertConfig, tie_embeddings: bool = True) -> dict[str, Any]:
    """The ``config.json`` entries BERT and RoBERTa share."""
    if cfg.norm_first:
        raise ValueError("a pre-norm (norm_first=True) BERT has no Hugging Face equivalent to export to")
    return {
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
        "tie_word_embeddings": tie_embeddings,
    }


def bert_config_to_hf(cfg: BertConfig, tie_embeddings: bool = True) -> dict:
    """:class:`BertConfig` -> an HF ``config.json`` dict for ``BertForMaskedLM``."""
    if cfg.positions != "absolute":
        raise ValueError(f"BertConfig.positions={cfg.positions!r} is RoBERTa's layout: export it as RoBERTa")
    return {"architectures": ["BertForMaskedLM"], "model_type": "bert", **common_config_to_hf(cfg, tie_embeddings)}


def bert_state_from_hf(
    hf_state: Mapping[str, Tensor], cfg: BertConfig, prefix: str = "bert."
) -> tuple[dict[str, Tensor], list[str]]:
    """HF ``BertModel`` tensors (an optional ``prefix``, ``bert.`` or ``roberta.``, is stripped) -> :class:`Bert`
    state dict.

    Returns the state dict and the HF keys it did not use (pooler, MLM head, ``position_ids`` ...); missing
    encoder keys are a ``ValueError``.
    """
    src = {k.removeprefix(prefix): v for k, v in hf_state.items()}
    used: set[str] = set()

    def take(name: str) -> Tensor:
        if name not in src:
            raise ValueError(f"HF weights lack {prefix}{name} (is this a checkpoint with {cfg.depth} layers?)")
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
    unused = sorted(k for k in hf_state if k.removeprefix(prefix) not in used)
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


@dataclass(frozen=True)
class HFMaskedLM:
    """How one HF ``*ForMaskedLM`` family names its tensors: the encoder prefix and the MLM head's tensors."""

    architecture: str
    prefix: str
    head: Mapping[str, str]  # HF name -> ours (dense, LayerNorm, output bias)
    decoder_weight: str
    decoder_bias: str


BERT_MLM = HFMaskedLM(
    architecture="BertForMaskedLM",
    prefix="bert.",
    head={
        "cls.predictions.transform.dense.weight": "head.dense.weight",
        "cls.predictions.transform.dense.bias": "head.dense.bias",
        "cls.predictions.transform.LayerNorm.weight": "head.norm.weight",
        "cls.predictions.transform.LayerNorm.bias": "head.norm.bias",
        "cls.predictions.bias": "head.bias",
    },
    decoder_weight="cls.predictions.decoder.weight",
    decoder_bias="cls.predictions.decoder.bias",
)


def _same(tensors: Mapping[str, Tensor], name: str, expected: Tensor, why: str) -> None:
    if not torch.equal(tensors[name], expected):
        raise ValueError(f"HF tensor {name} differs from {why}; masklab would silently drop it")


def mlm_from_hf_tensors(
    tensors: Mapping[str, Tensor], bert_cfg: BertConfig, mlm_cfg: MLMConfig, family: HFMaskedLM = BERT_MLM
) -> tuple[BertForMLM, list[str]]:
    """A :class:`BertForMLM` holding HF ``*ForMaskedLM`` (or bare encoder) tensors; returns it and every HF key
    it did not use.

    Without head tensors (a ``BertModel``) the MLM head keeps its fresh init. A tied head's
    ``decoder.weight`` (if saved) must equal the word embeddings and ``decoder.bias`` the head bias, otherwise
    it is an error naming the tensor: nothing is dropped silently.
    """
    model = BertForMLM(mlm_cfg)
    state, not_encoder = bert_state_from_hf(tensors, bert_cfg, family.prefix)
    state = {f"bert.{k}": v for k, v in state.items()}
    head = {theirs: ours for theirs, ours in family.head.items() if theirs in tensors}
    has_head = bool(head)
    bias = next(theirs for theirs, ours in family.head.items() if ours == "head.bias")
    if mlm_cfg.tie_embeddings:
        if family.decoder_weight in tensors:
            _same(tensors, family.decoder_weight, state["bert.embeddings.word.weight"], "the word embeddings, "
                  "but the config ties them (tie_word_embeddings=true)")  # fmt: skip
            head[family.decoder_weight] = ""
        if family.decoder_bias in tensors and bias in tensors:
            _same(tensors, family.decoder_bias, tensors[bias], f"{bias}, but the config ties them")
            head[family.decoder_bias] = ""
    elif has_head:
        # Untied, HF's forward adds decoder.bias; the head's own bias is then a copy that only counts if equal.
        for name in (family.decoder_weight, family.decoder_bias):
            if name not in tensors:
                raise ValueError(f"tie_word_embeddings is false but the weights have no {name}")
        head[family.decoder_weight] = "head.decoder.weight"
        head[family.decoder_bias] = "head.bias"
        if bias in head and not torch.equal(tensors[bias], tensors[family.decoder_bias]):
            del head[bias]  # HF ignores it too: reported as unused below
    state.update({ours: tensors[theirs] for theirs, ours in head.items() if ours})
    used = (set(tensors) - set(not_encoder)) | set(head)
    missing, unexpected = load_checked(model, state, BERT_SHAPE_FIELDS, strict=False)
    allowed_missing = set(family.head.values()) | {"head.decoder.weight", "classifier.weight", "classifier.bias"}
    if unexpected or set(missing) - allowed_missing or (has_head and set(missing) & set(family.head.values())):
        raise ValueError(f"weights do not fit (missing {missing}, unexpected {unexpected})")
    return model, sorted(set(tensors) - used)


def load_bert_mlm(folder: str | Path, *, mask_id: int | None = None, **overrides: Any) -> tuple[BertForMLM, list[str]]:
    """Load an HF ``BertForMaskedLM`` / ``BertModel`` folder (config.json + model.safetensors); for either BERT or
    RoBERTa use :func:`masklab.interop.hf.masked_lm.load_hf_mlm`.

    Without ``cls.predictions.*`` tensors (a ``BertModel``) the MLM head keeps its fresh init. ``mask_id``
    defaults to 103 (uncased BERT's [MASK]); pass the tokenizer's. Returns the model and every HF key left
    unused (e.g. the pooler), so a caller can report them.
    """
    hf_config, tensors = read_hf_folder(folder)
    bert_cfg = bert_config_from_hf(hf_config)
    tie = bool(hf_config.get("tie_word_embeddings", True))
    mlm_cfg = MLMConfig(bert=bert_cfg, mask_id=103 if mask_id is None else mask_id, tie_embeddings=tie, **overrides)
    try:
        return mlm_from_hf_tensors(tensors, bert_cfg, mlm_cfg, BERT_MLM)
    except ValueError as err:
        raise ValueError(f"{folder}: {err}") from None


def mlm_state_to_hf(model: BertForMLM, family: HFMaskedLM = BERT_MLM) -> dict[str, Tensor]:
    """Tensors named as HF ``*ForMaskedLM`` saves them (a tied decoder left out, as HF does; an untied one
    saved with its bias copy, as HF does)."""
    ours = {k.removeprefix("bert."): v for k, v in model.state_dict().items() if k.startswith("bert.")}
    out = bert_state_to_hf(ours, model.config.bert, prefix=family.prefix)
    out.update({theirs: model.get_parameter(name) for theirs, name in family.head.items()})
    if model.head.decoder is not None:
        out[family.decoder_weight] = model.head.decoder.weight
        out[family.decoder_bias] = model.head.bias
    return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}


def bert_mlm_state_to_hf(model: BertForMLM) -> dict[str, Tensor]:
    """:func:`mlm_state_to_hf` with BERT's names."""
    return mlm_state_to_hf(model, BERT_MLM)


def save_hf_folder(folder: str | Path, hf_config: dict, tensors: dict[str, Tensor], tokenizer: Any, vocab: int) -> Path:
    """Write an HF model folder: ``config.json``, ``model.safetensors`` (atomic writes) and, if given, the
    tokenizer's ``tokenizer.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        if tokenizer.vocab_size != vocab:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids but the model {vocab}")
        tokenizer.save(folder)
    # transformers refuses safetensors without format=pt metadata; the hash entry is masklab's integrity check.
    save_checkpoint(folder / HF_WEIGHTS, tensors, {"format": "pt"})
    atomic_write_json(folder / HF_CONFIG, hf_config)
    return folder


def save_bert_mlm(model: BertForMLM, folder: str | Path, tokenizer: Any = None) -> Path:
    """Write an HF ``BertForMaskedLM`` folder that ``transformers`` loads with ``from_pretrained``."""
    hf_config = bert_config_to_hf(model.config.bert, model.config.tie_embeddings)
    return save_hf_folder(folder, hf_config, bert_mlm_state_to_hf(model), tokenizer, model.config.bert.vocab_size)
