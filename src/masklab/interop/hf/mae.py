"""Hugging Face ``ViTMAEForPreTraining`` -> masklab :class:`~masklab.models.mae.MAE` (config and weights).

Differences the converter bridges (transformers 5.x layout):

- HF keeps separate ``q_proj``/``k_proj``/``v_proj`` Linears; masklab fuses them into one ``qkv`` Linear
  (rows ``[q; k; v]``, heads contiguous inside each), one GEMM instead of three.
- HF embeds patches with a stride-p ``Conv2d`` ``(D, C, p, p)``; masklab uses a Linear on patchified pixels
  laid out ``(row, col, channel)``, so the kernel is permuted to ``(D, p, p, C)`` and flattened.
- HF stores the fixed sin-cos tables as frozen parameters ``(1, 1 + L, D)`` with a zero CLS row; masklab
  recomputes them from the config. The converter checks that the HF tables are that table (MAE's layout:
  first half of the channels encodes the column, second half the row) and refuses weights that are not.
- HF's ``layer_norm_eps`` defaults to 1e-12 (MAE's timm code uses 1e-6); it is carried into ``norm_eps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from masklab.models.mae import MAE, MAEConfig
from masklab.nn.pos_embed import sincos_2d

_BLOCK_RENAMES = {
    "attention.o_proj": "attn.proj",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


def mae_config_from_hf(hf_config: Any, **overrides: Any) -> MAEConfig:
    """The :class:`MAEConfig` of a ``transformers.ViTMAEConfig`` (square patches; GELU MLPs of any integer width)."""
    patch = _pair(hf_config.patch_size)
    if patch[0] != patch[1]:
        raise ValueError(f"only square patches are supported, got patch_size={hf_config.patch_size}")
    if hf_config.hidden_act != "gelu":
        raise ValueError(f"only hidden_act='gelu' maps onto masklab blocks, got {hf_config.hidden_act!r}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        # masklab MAE has no dropout (MAE pretrains without it); a silent drop would change training.
        value = float(getattr(hf_config, name, 0.0) or 0.0)
        if value != 0.0:
            raise ValueError(f"ViTMAE config {name}={value} is not supported: masklab MAE has no dropout (needs 0.0)")
    if not hf_config.qkv_bias:
        raise ValueError("masklab MAE blocks always have a qkv bias; qkv_bias=False is not supported")
    values = {
        "image_size": _pair(hf_config.image_size),
        "patch_size": patch[0],
        "channels": hf_config.num_channels,
        "dim": hf_config.hidden_size,
        "depth": hf_config.num_hidden_layers,
        "heads": hf_config.num_attention_heads,
        "decoder_dim": hf_config.decoder_hidden_size,
        "decoder_depth": hf_config.decoder_num_hidden_layers,
        "decoder_heads": hf_config.decoder_num_attention_heads,
        "mlp_hidden": int(hf_config.intermediate_size),
        "decoder_mlp_hidden": int(hf_config.decoder_intermediate_size),
        "norm_eps": hf_config.layer_norm_eps,
        "mask_ratio": hf_config.mask_ratio,
        "norm_pix_loss": bool(hf_config.norm_pix_loss),
    }
    return MAEConfig(**{**values, **overrides})


def _check_table(name: str, got: Tensor, expected: Tensor) -> None:
    got = got.reshape(expected.shape).to(torch.float32)
    if not torch.allclose(got, expected, atol=1e-6, rtol=0):
        diff = (got - expected).abs().max().item()
        raise ValueError(
            f"{name} is not MAE's fixed 2-D sin-cos table (max abs difference {diff:.3g}); masklab MAE "
            "recomputes that table and cannot take other position embeddings"
        )


def mae_from_hf_state_dict(state_dict: Mapping[str, Tensor], config: MAEConfig) -> dict[str, Tensor]:
    """Map a ``ViTMAEForPreTraining.state_dict()`` onto the parameter names of ``MAE(config)``.

    Raises ``ValueError`` for missing or unexpected HF keys and for position tables that are not the fixed
    sin-cos embedding.
    """
    sd = dict(state_dict)
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        if key not in sd:
            raise ValueError(f"HF ViTMAE state dict has no {key!r}")
        return sd.pop(key)

    gh, gw = config.grid
    _check_table("vit.embeddings.position_embeddings", take("vit.embeddings.position_embeddings"),
                 sincos_2d(gh, gw, config.dim, cls_token=True))  # fmt: skip
    out["cls_token"] = take("vit.embeddings.cls_token")
    kernel = take("vit.embeddings.patch_embeddings.projection.weight")  # (D, C, p, p)
    out["patch_embed.weight"] = kernel.permute(0, 2, 3, 1).reshape(kernel.shape[0], -1)  # (D, p*p*C)
    out["patch_embed.bias"] = take("vit.embeddings.patch_embeddings.projection.bias")

    def blocks(hf_prefix: str, ours: str, depth: int) -> None:
        for i in range(depth):
            src, dst = f"{hf_prefix}.{i}", f"{ours}.blocks.{i}"
            for part in ("weight", "bias"):
                qkv = [take(f"{src}.attention.{p}_proj.{part}") for p in "qkv"]
                out[f"{dst}.attn.qkv.{part}"] = torch.cat(qkv, dim=0)
                for hf_name, our_name in _BLOCK_RENAMES.items():
                    out[f"{dst}.{our_name}.{part}"] = take(f"{src}.{hf_name}.{part}")

    blocks("vit.layers", "encoder", config.depth)
    for part in ("weight", "bias"):
        out[f"encoder.norm.{part}"] = take(f"vit.layernorm.{part}")
    _check_table("decoder.decoder_pos_embed", take("decoder.decoder_pos_embed"),
                 sincos_2d(gh, gw, config.decoder_dim, cls_token=True))  # fmt: skip
    out["mask_token"] = take("decoder.mask_token")
    blocks("decoder.decoder_layers", "decoder", config.decoder_depth)
    for part in ("weight", "bias"):
        out[f"decoder_embed.{part}"] = take(f"decoder.decoder_embed.{part}")
        out[f"decoder.norm.{part}"] = take(f"decoder.decoder_norm.{part}")
        out[f"decoder_pred.{part}"] = take(f"decoder.decoder_pred.{part}")
    if sd:
        raise ValueError(f"unexpected HF ViTMAE keys (a different architecture?): {sorted(sd)[:8]}")
    return out


def mae_from_hf(hf_model: Any, **overrides: Any) -> MAE:
    """A masklab :class:`MAE` with the weights of a ``transformers.ViTMAEForPreTraining`` (eval mode)."""
    config = mae_config_from_hf(hf_model.config, **overrides)
    model = MAE(config)
    model.load_state_dict(mae_from_hf_state_dict(hf_model.state_dict(), config))
    return model.eval()


def mae_config_to_hf(config: MAEConfig) -> dict[str, Any]:
    """``ViTMAEConfig`` keyword arguments for the architecture of ``config`` (dropout off, as masklab MAE)."""
    if config.variant != "mae" or config.objective != "reconstruct":
        raise ValueError(f"only variant='mae' objective='reconstruct' exports to ViTMAEForPreTraining, got "
                         f"variant={config.variant!r} objective={config.objective!r}")  # fmt: skip
    if config.image_size[0] != config.image_size[1]:
        raise ValueError(f"ViTMAE needs a square image, got image_size={config.image_size}")
    if config.pixel_mean is not None or config.pixel_std is not None:
        raise ValueError("pixel_mean/pixel_std normalise inside masklab MAE; ViTMAE expects normalised pixels")
    return {
        "image_size": config.image_size[0],
        "patch_size": config.patch_size,
        "num_channels": config.channels,
        "hidden_size": config.dim,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.heads,
        "intermediate_size": config.mlp_hidden,
        "decoder_hidden_size": config.decoder_dim,
        "decoder_num_hidden_layers": config.decoder_depth,
        "decoder_num_attention_heads": config.decoder_heads,
        "decoder_intermediate_size": config.decoder_mlp_hidden,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": config.norm_eps,
        "qkv_bias": True,
        "mask_ratio": config.mask_ratio,
        "norm_pix_loss": config.norm_pix_loss,
    }


def mae_to_hf_state_dict(model: MAE) -> dict[str, Tensor]:
    """The inverse of :func:`mae_from_hf_state_dict`: ``ViTMAEForPreTraining`` tensor names for ``model``."""
    config, ours = model.config, model.state_dict()
    gh, gw = config.grid
    p, c = config.patch_size, config.channels
    patch = ours["patch_embed.weight"]  # (D, p*p*C) laid out (row, col, channel)
    out = {
        "vit.embeddings.cls_token": ours["cls_token"],
        "vit.embeddings.position_embeddings": sincos_2d(gh, gw, config.dim, cls_token=True)[None],
        "vit.embeddings.patch_embeddings.projection.weight": patch.reshape(-1, p, p, c).permute(0, 3, 1, 2),
        "vit.embeddings.patch_embeddings.projection.bias": ours["patch_embed.bias"],
        "decoder.decoder_pos_embed": sincos_2d(gh, gw, config.decoder_dim, cls_token=True)[None],
        "decoder.mask_token": ours["mask_token"],
    }

    def blocks(hf_prefix: str, prefix: str, depth: int) -> None:
        for i in range(depth):
            src, dst = f"{prefix}.blocks.{i}", f"{hf_prefix}.{i}"
            for part in ("weight", "bias"):
                for name, t in zip("qkv", ours[f"{src}.attn.qkv.{part}"].chunk(3, dim=0), strict=True):
                    out[f"{dst}.attention.{name}_proj.{part}"] = t
                for hf_name, our_name in _BLOCK_RENAMES.items():
                    out[f"{dst}.{hf_name}.{part}"] = ours[f"{src}.{our_name}.{part}"]

    blocks("vit.layers", "encoder", config.depth)
    blocks("decoder.decoder_layers", "decoder", config.decoder_depth)
    for part in ("weight", "bias"):
        out[f"vit.layernorm.{part}"] = ours[f"encoder.norm.{part}"]
        out[f"decoder.decoder_embed.{part}"] = ours[f"decoder_embed.{part}"]
        out[f"decoder.decoder_norm.{part}"] = ours[f"decoder.norm.{part}"]
        out[f"decoder.decoder_pred.{part}"] = ours[f"decoder_pred.{part}"]
    return {k: v.detach().contiguous().clone() for k, v in out.items()}
