"""Import Hugging Face GPT-2 weights (a local folder or a state dict) into :class:`masklab.models.clm.GPT`.

Differences the converter bridges (transformers ``modeling_gpt2.py``):
- HF's ``Conv1D`` stores weights as ``(in, out)``; ``nn.Linear`` wants ``(out, in)``: every matrix is transposed.
- ``c_attn`` is one fused projection with outputs ordered ``[q | k | v]`` and heads contiguous inside each,
  exactly the row layout of masklab's ``qkv`` Linear after the transpose.
- ``gelu_new`` is the tanh-approximated GELU (``activation="gelu_tanh"``); LayerNorm eps is ``layer_norm_epsilon``.
- ``lm_head`` is tied to ``wte``; ``attn.bias`` / ``attn.masked_bias`` are causal-mask buffers, not weights.

Only safetensors files are read (never ``torch.load``/pickle).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masklab.interop.hf.shapes import load_checked
from masklab.models.clm import GPT, GPTConfig

_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")
# masklab block parameter -> GPT-2 block parameter (prefixes decoder.blocks.{i}. / h.{i}.).
_NORMS = {"norm1": "ln_1", "norm2": "ln_2"}
_LINEARS = {"attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}


def config_from_hf(hf_config: Mapping[str, Any]) -> GPTConfig:
    """A GPT-2 ``config.json`` (dict, or a ``GPT2Config``'s ``to_dict()``) -> :class:`GPTConfig`.

    Raises ValueError for GPT-2 variants this model does not implement.
    """
    get = hf_config.get
    unsupported = {
        "scale_attn_by_inverse_layer_idx": get("scale_attn_by_inverse_layer_idx", False),
        "add_cross_attention": get("add_cross_attention", False),
        "scale_attn_weights is False": not get("scale_attn_weights", True),
    }
    bad = [name for name, on in unsupported.items() if on]
    if bad:
        raise ValueError(f"GPT-2 config uses options masklab's GPT does not implement: {bad}")
    act = get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ValueError(f"GPT-2 activation_function {act!r} is not supported; expected one of {sorted(_ACTIVATIONS)}")
    dim = int(get("n_embd", 768))
    inner = get("n_inner")
    return GPTConfig(
        vocab_size=int(get("vocab_size", 50257)),
        context=int(get("n_positions", 1024)),
        dim=dim,
        depth=int(get("n_layer", 12)),
        heads=int(get("n_head", 12)),
        mlp_hidden=None if inner is None else int(inner),
        dropout=0.0,
        norm_eps=float(get("layer_norm_epsilon", 1e-5)),
        activation=_ACTIVATIONS[act],
        tie_embeddings=bool(get("tie_word_embeddings", True)),
    )


def state_dict_from_hf(hf_state: Mapping[str, Tensor], cfg: GPTConfig) -> dict[str, Tensor]:
    """HF GPT-2 tensors (``GPT2LMHeadModel`` or ``GPT2Model`` names) -> masklab ``GPT`` state dict.

    Raises ValueError naming any tensor that is missing or left unused.
    """
    state = {k.removeprefix("transformer."): v for k, v in hf_state.items() if not k.endswith(_BUFFER_SUFFIXES)}
    used: set[str] = set()

    def take(name: str) -> Tensor:
        if name not in state:
            raise ValueError(f"GPT-2 weights have no tensor {name!r}")
        used.add(name)
        return state[name]

    out = {"tok_embed.weight": take("wte.weight"), "pos_embed.weight": take("wpe.weight")}
    for i in range(cfg.depth):
        h, b = f"h.{i}.", f"decoder.blocks.{i}."
        for ours, theirs in _NORMS.items():
            out[f"{b}{ours}.weight"] = take(f"{h}{theirs}.weight")
            out[f"{b}{ours}.bias"] = take(f"{h}{theirs}.bias")
        for ours, theirs in _LINEARS.items():
            out[f"{b}{ours}.weight"] = take(f"{h}{theirs}.weight").t().contiguous()  # Conv1D (in, out) -> (out, in)
            out[f"{b}{ours}.bias"] = take(f"{h}{theirs}.bias")
    out["decoder.norm.weight"] = take("ln_f.weight")
    out["decoder.norm.bias"] = take("ln_f.bias")
    if "lm_head.weight" in state:
        used.add("lm_head.weight")
        if cfg.tie_embeddings:
            if not torch.equal(state["lm_head.weight"], out["tok_embed.weight"]):
                raise ValueError("lm_head.weight differs from wte.weight but the config ties the embeddings")
        else:
            out["lm_head.weight"] = state["lm_head.weight"]
    elif not cfg.tie_embeddings:
        raise ValueError("GPT-2 weights have no 'lm_head.weight' but the config does not tie the embeddings")
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"GPT-2 weights hold tensors the converter does not map: {unused[:8]}")
    return out


def from_hf_model(hf_model: Any) -> GPT:
    """A live ``transformers.GPT2LMHeadModel`` (or ``GPT2Model``) -> an equivalent masklab ``GPT`` (eval mode)."""
    cfg = config_from_hf(hf_model.config.to_dict())
    model = GPT(cfg)
    model.load_state_dict(state_dict_from_hf(hf_model.state_dict(), cfg))
    return model.eval()


def load_hf_gpt2(folder: str | Path) -> GPT:
    """Load a GPT-2 checkpoint folder (``config.json`` + ``model.safetensors``, as ``save_pretrained`` writes it)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json (expected a Hugging Face GPT-2 folder)")
    hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"{config_path}: model_type is {hf_config.get('model_type')!r}, expected 'gpt2'")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        pickle = (folder / "pytorch_model.bin").exists()
        extra = " (pytorch_model.bin is a pickle and is never loaded; convert it to safetensors)" if pickle else ""
        raise FileNotFoundError(f"{folder} has no *.safetensors weights{extra}")
    hf_state: dict[str, Tensor] = {}
    for file in files:  # sharded checkpoints are several files holding disjoint tensors
        hf_state.update(load_file(str(file)))
    cfg = config_from_hf(hf_config)
    model = GPT(cfg)
    fields = {"tok_embed": ("vocab_size", "n_embd"), "pos_embed": ("n_positions", "n_embd"),
              "lm_head": ("vocab_size", "n_embd"), "mlp.fc1": ("n_inner", "n_embd"), "mlp.fc2": ("n_embd", "n_inner"),
              ".": ("n_embd",)}  # fmt: skip
    load_checked(model, state_dict_from_hf(hf_state, cfg), fields)
    return model.eval()


def to_hf_state_dict(model: GPT) -> dict[str, Tensor]:
    """The inverse mapping: a masklab ``GPT`` state dict with ``GPT2LMHeadModel`` names (for HF comparisons)."""
    cfg = model.config
    ours = model.state_dict()
    out = {"transformer.wte.weight": ours["tok_embed.weight"], "transformer.wpe.weight": ours["pos_embed.weight"]}
    for i in range(cfg.depth):
        h, b = f"transformer.h.{i}.", f"decoder.blocks.{i}."
        for o, t in _NORMS.items():
            out[f"{h}{t}.weight"], out[f"{h}{t}.bias"] = ours[f"{b}{o}.weight"], ours[f"{b}{o}.bias"]
        for o, t in _LINEARS.items():
            out[f"{h}{t}.weight"] = ours[f"{b}{o}.weight"].t().contiguous()
            out[f"{h}{t}.bias"] = ours[f"{b}{o}.bias"]
    out["transformer.ln_f.weight"] = ours["decoder.norm.weight"]
    out["transformer.ln_f.bias"] = ours["decoder.norm.bias"]
    out["lm_head.weight"] = ours["tok_embed.weight"] if cfg.tie_embeddings else ours["lm_head.weight"]
    return out


def special_token_ids(tokenizer: Any = None) -> dict[str, int | None]:
    """``bos_token_id`` / ``eos_token_id`` / ``pad_token_id`` of ``tokenizer`` (a ``TextTokenizer``) for a GPT-2
    config. masklab's LM stream separates documents with the tokenizer's ``sep`` token (GPT-2's own
    ``<|endoftext|>``), which GPT-2 uses as both bos and eos. None where the tokenizer has no such token, or no
    tokenizer is given: ``GPT2Config``'s defaults (50256) would name an id outside a small vocabulary."""
    sep = None if tokenizer is None else tokenizer.role_id("sep")
    pad = None if tokenizer is None else tokenizer.role_id("pad")
    return {"bos_token_id": sep, "eos_token_id": sep, "pad_token_id": pad}


def hf_tokenizer_files(tokenizer: Any, context: int) -> tuple[str, dict[str, Any]]:
    """(``tokenizer.json`` text, ``tokenizer_config.json`` dict) that make ``AutoTokenizer.from_pretrained``
    give exactly masklab's ids (``encode(text, add_special_tokens=False)``) for a GPT-2 export of ``tokenizer``.

    masklab's LM encodes every text without special tokens, so the ``[CLS] $A [SEP]`` template its tokenizers
    carry (for BERT) is removed: HF adds special tokens by default. ``tokenizer_class`` is
    ``PreTrainedTokenizerFast`` (the ``tokenizer.json`` pipeline as it is): without it ``model_type`` gpt2 picks
    ``GPT2Tokenizer``, whose byte-level pre-tokenizer drops a char tokenizer's spaces. Its eos/bos token is the
    ``sep`` token and its pad token the ``pad`` token, the ids :func:`special_token_ids` puts in ``config.json``."""
    backend = json.loads(tokenizer.to_json())
    backend["post_processor"] = None  # framing only: under add_special_tokens=False it adds no id
    config: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": context,
                              "clean_up_tokenization_spaces": False}  # fmt: skip
    roles = {"eos_token": "sep", "bos_token": "sep", "pad_token": "pad", "unk_token": "unk"}
    for key, role in roles.items():
        found = tokenizer.role_id(role)
        if found is not None:
            config[key] = tokenizer.id_to_token(found)
    return json.dumps(backend, ensure_ascii=False), config


def hf_config_dict(cfg: GPTConfig, tokenizer: Any = None) -> dict[str, Any]:
    """``GPT2Config`` keyword arguments describing the same architecture as ``cfg`` (dropout off), with the
    special token ids of ``tokenizer`` (:func:`special_token_ids`)."""
    inverse = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
    return {
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.context,
        "n_embd": cfg.dim,
        "n_layer": cfg.depth,
        "n_head": cfg.heads,
        "n_inner": cfg.mlp_hidden,
        "activation_function": inverse[cfg.activation],
        "layer_norm_epsilon": cfg.norm_eps,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "tie_word_embeddings": cfg.tie_embeddings,
        **special_token_ids(tokenizer),
    }
