"""Hugging Face ``PatchTSTForPretraining`` -> :class:`masklab.models.series.PatchTST`, weight for weight.

The converted model computes HF's scaler, patches, masking noise, encoder, head and masked MSE: with the same
seed (HF draws its mask noise from torch's global generator, masklab from the generator it is given) the
loss, predictions and gradients agree to float rounding. HF options masklab does not implement are refused
with the config field named, never approximated. HF has no padding: its ``past_observed_mask`` marks missing
values, which masklab's ``observed`` carries (``missing="zero"`` and ``loss_on_missing=True`` reproduce
HF's treatment of them).
"""

from __future__ import annotations

from typing import Any

import torch

from masklab.models.series.config import SeriesConfig
from masklab.models.series.model import PatchTST


def _refuse(field: str, value: Any, expected: str) -> None:
    raise ValueError(f"PatchTSTConfig.{field}={value!r} is not supported: masklab's PatchTST needs {expected}")


def config_from_hf(hf_config: Any) -> SeriesConfig:
    """The :class:`SeriesConfig` equivalent to a ``transformers.PatchTSTConfig`` (ValueError naming the
    first field masklab cannot reproduce exactly)."""
    c = hf_config
    required = {
        "norm_type": ("layernorm", "norm_type='layernorm' (BatchNorm mixes series, padded steps included)"),
        "channel_attention": (False, "channel_attention=False (channel-independent patches)"),
        "use_cls_token": (False, "use_cls_token=False (features are mean-pooled)"),
        "share_embedding": (True, "share_embedding=True"),
        "pre_norm": (True, "pre_norm=True"),
        "activation_function": ("gelu", "activation_function='gelu'"),
        "bias": (True, "bias=True"),
        "channel_consistent_masking": (False, "channel_consistent_masking=False"),
        "unmasked_channel_indices": (None, "unmasked_channel_indices=None"),
        "mask_value": (0, "mask_value=0"),
    }
    for field, (value, expected) in required.items():
        if getattr(c, field) != value:
            _refuse(field, getattr(c, field), expected)
    if c.scaling not in ("std", None, False):
        _refuse("scaling", c.scaling, "scaling='std' or None")
    if (c.context_length - c.patch_length) % c.patch_stride:
        _refuse("context_length", c.context_length,
                "(context_length - patch_length) % patch_stride == 0 (HF drops leading steps)")  # fmt: skip
    mask: dict[str, Any]
    if c.mask_type == "random":
        mask = dict(mask_kind="random", mask_ratio=float(c.random_mask_ratio))
    elif c.mask_type == "forecast":
        counts = c.num_forecast_mask_patches
        counts = [counts] if isinstance(counts, int) else list(counts)
        if len(counts) != 1:
            _refuse("num_forecast_mask_patches", c.num_forecast_mask_patches, "a single patch count")
        mask = dict(mask_kind="tail", tail_patches=int(counts[0]))
    else:
        _refuse("mask_type", c.mask_type, "'random' or 'forecast'")
    num_patches = (c.context_length - c.patch_length) // c.patch_stride + 1
    return SeriesConfig(
        channels=c.num_input_channels, patch_len=c.patch_length, stride=c.patch_stride, max_patches=num_patches,
        dim=c.d_model, depth=c.num_hidden_layers, heads=c.num_attention_heads, mlp_hidden=c.ffn_dim,
        dropout=0.0, norm_eps=c.norm_eps, final_norm=False, scaling=c.scaling == "std",
        min_scale=float(getattr(c, "minimum_scale", 1e-5)), missing="zero", loss_on_missing=True, **mask,
    )  # fmt: skip


@torch.no_grad()
def from_hf(hf_model: Any) -> PatchTST:
    """A :class:`PatchTST` holding a copy of ``PatchTSTForPretraining``'s weights (dropout is not copied:
    compare in eval mode or with HF dropouts at 0)."""
    config = config_from_hf(hf_model.config)
    model = PatchTST(config)
    hf = hf_model.state_dict()
    ours: dict[str, torch.Tensor] = {
        "patch_embed.weight": hf["model.encoder.embedder.input_embedding.weight"],
        "patch_embed.bias": hf["model.encoder.embedder.input_embedding.bias"],
        "pos_embed": hf["model.encoder.positional_encoder.position_enc"],
        "head.weight": hf["head.linear.weight"],
        "head.bias": hf["head.linear.bias"],
    }
    for i in range(config.depth):
        src, dst = f"model.encoder.layers.{i}.", f"encoder.blocks.{i}."
        for part in ("weight", "bias"):
            ours[f"{dst}attn.qkv.{part}"] = torch.cat([hf[f"{src}self_attn.{p}_proj.{part}"] for p in "qkv"])
            ours[f"{dst}attn.proj.{part}"] = hf[f"{src}self_attn.out_proj.{part}"]
            ours[f"{dst}norm1.{part}"] = hf[f"{src}norm_sublayer1.{part}"]
            ours[f"{dst}norm2.{part}"] = hf[f"{src}norm_sublayer3.{part}"]
            ours[f"{dst}mlp.fc1.{part}"] = hf[f"{src}ff.0.{part}"]
            ours[f"{dst}mlp.fc2.{part}"] = hf[f"{src}ff.3.{part}"]
    model.load_state_dict(ours, strict=True)
    return model


def hf_parameter_names(depth: int) -> dict[str, str]:
    """masklab parameter name -> the HF names it was built from (for comparing gradients); ``qkv`` maps to
    the three HF projections concatenated in q, k, v order."""
    names = {
        "patch_embed.weight": "model.encoder.embedder.input_embedding.weight",
        "patch_embed.bias": "model.encoder.embedder.input_embedding.bias",
        "head.weight": "head.linear.weight",
        "head.bias": "head.linear.bias",
    }
    for i in range(depth):
        src, dst = f"model.encoder.layers.{i}.", f"encoder.blocks.{i}."
        for part in ("weight", "bias"):
            names[f"{dst}attn.qkv.{part}"] = ",".join(f"{src}self_attn.{p}_proj.{part}" for p in "qkv")
            names[f"{dst}attn.proj.{part}"] = f"{src}self_attn.out_proj.{part}"
            names[f"{dst}norm1.{part}"] = f"{src}norm_sublayer1.{part}"
            names[f"{dst}norm2.{part}"] = f"{src}norm_sublayer3.{part}"
            names[f"{dst}mlp.fc1.{part}"] = f"{src}ff.0.{part}"
            names[f"{dst}mlp.fc2.{part}"] = f"{src}ff.3.{part}"
    return names
