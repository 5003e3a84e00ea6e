"""BERT encoder (Devlin et al. 2019) on masklab.nn, and Hugging Face BERT weight import/export.

Shape legend: ``B`` batch, ``L`` tokens, ``D`` width, ``V`` vocabulary. ``padding: bool (B, L)`` True = padded
token (attended by no query; converted to SDPA's polarity inside :mod:`masklab.nn.attention`).

Layout: token + learned position + token-type embeddings -> LayerNorm -> dropout -> :class:`masklab.nn.Encoder`
(post-norm like BERT, or pre-norm with a final LayerNorm). The HF converters map ``BertModel`` /
``BertForMaskedLM`` safetensors onto this module: separate query/key/value Linear layers are fused into our one
``qkv`` projection (rows ``[q; k; v]``, each split into heads the same way HF splits them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from masklab.nn import Encoder, LearnedPositionEmbedding, TransformerConfig
from masklab.nn.attention import Backend


@dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT encoder. ``intermediate`` defaults to ``4 * dim``; ``norm_first=False`` is BERT's
    post-norm, ``True`` pre-norm (Xiong et al. 2020: trains stably without warmup, no HF equivalent)."""

    vocab_size: int
    dim: int = 256
    depth: int = 4
    heads: int = 4
    intermediate: int | None = None
    max_len: int = 512
    type_vocab_size: int = 2
    pad_id: int = 0
    norm_first: bool = False
    norm_eps: float = 1e-12
    dropout: float = 0.1
    attn_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.intermediate is None:
            object.__setattr__(self, "intermediate", 4 * self.dim)
        for name in ("vocab_size", "dim", "depth", "heads", "intermediate", "max_len", "type_vocab_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BertConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.heads:
            raise ValueError(f"BertConfig.dim={self.dim} must be divisible by heads={self.heads}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"BertConfig.pad_id={self.pad_id} is outside the vocabulary of {self.vocab_size}")

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_ratio=self.intermediate / self.dim,  # exact: TransformerConfig.mlp_hidden = int(dim * ratio)
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            norm_first=self.norm_first,
            norm_eps=self.norm_eps,
            activation="gelu",  # BERT's exact erf GELU (HF "gelu")
            final_norm=self.norm_first,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, values: Mapping) -> BertConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown BertConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


# Google's BERT miniatures (Turc et al. 2019) and BERT-base; intermediate = 4 * dim.
BERT_PRESETS: dict[str, dict[str, int]] = {
    "bert-tiny": {"dim": 128, "depth": 2, "heads": 2},
    "bert-mini": {"dim": 256, "depth": 4, "heads": 4},
    "bert-small": {"dim": 512, "depth": 4, "heads": 8},
    "bert-base": {"dim": 768, "depth": 12, "heads": 12},
}


def bert_preset(name: str, vocab_size: int, **overrides) -> BertConfig:
    """A :data:`BERT_PRESETS` entry with ``vocab_size`` and any field overridden."""
    if name not in BERT_PRESETS:
        raise ValueError(f"unknown BERT preset {name!r}; known: {', '.join(BERT_PRESETS)}")
    return BertConfig(vocab_size=vocab_size, **{**BERT_PRESETS[name], **overrides})


class BertEmbeddings(nn.Module):
    """``ids (B, L)`` -> LayerNorm(word + position + token type) -> dropout -> ``(B, L, D)``."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        # padding_idx keeps the [PAD] row's input gradient at zero, as in BERT / HF.
        self.word = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=cfg.pad_id)
        self.position = LearnedPositionEmbedding(cfg.max_len, cfg.dim)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        x = self.word(ids) + self.position(ids.shape[1])  # (B, L, D)
        # Segment 0 everywhere unless given, like HF; adding row 0 keeps imported weights exact.
        x = x + (self.token_type.weight[0] if token_type_ids is None else self.token_type(token_type_ids))
        return self.drop(self.norm(x))


class Bert(nn.Module):
    """The BERT encoder: ``ids (B, L)`` -> hidden states ``(B, L, D)``."""

    def __init__(self, cfg: BertConfig, backend: Backend = "sdpa") -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = Encoder(cfg.transformer(), backend)

    def forward(self, ids: Tensor, *, padding: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        """Args: ``ids`` long (B, L); ``padding`` bool (B, L), True = padded (None: no padding);
        ``token_type_ids`` long (B, L) or None. Returns ``(B, L, D)``."""
        if ids.shape[1] > self.cfg.max_len:
            raise ValueError(f"sequence of {ids.shape[1]} tokens exceeds max_len={self.cfg.max_len}")
        if padding is not None and not bool(padding.any()):
            padding = None  # an all-False mask would only keep SDPA off its fastest (mask-free) kernel
        return self.encoder(self.embeddings(ids, token_type_ids), padding=padding)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation (``initializer_range`` 0.02): normal weights, zero biases, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=std)
            if m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
        elif isinstance(m, LearnedPositionEmbedding):
            nn.init.normal_(m.weight, std=std)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------ Hugging Face interop
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
