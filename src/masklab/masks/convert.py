"""The one place where masklab's mask polarity meets other libraries' polarities.

masklab (everywhere else in the code base):
    ``masked``  bool (B, L)          True = hidden / to be predicted
    ``padding`` bool (B, L)          True = padded position, not a real token
    ``blocked`` bool (..., Lq, Lk)   True = query may NOT attend to key

Other libraries:
    PyTorch SDPA ``attn_mask`` (bool)          True = attend            -> :func:`to_sdpa` / :func:`from_sdpa`
    additive float mask (SDPA, HF "extended")  0 = attend, very negative = blocked
                                                                         -> :func:`to_additive` / :func:`from_additive`
    ``nn.MultiheadAttention`` key_padding_mask True = ignore that key    -> :func:`to_key_padding_mask` / ...
    ``nn.MultiheadAttention`` attn_mask (bool) True = not allowed        -> :func:`to_mha_attn_mask` / ...
    Hugging Face ``attention_mask``            1 = keep, 0 = padding     -> :func:`to_hf_attention_mask` / ...
    FlexAttention ``mask_mod``                 True = attend             -> :func:`to_block_mask`

Every pair round-trips exactly. Fully blocked query rows are legal here; :func:`sdpa_safe` prepares a mask for
fused kernels so such rows produce zeros instead of NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # attention.py imports this module (AttnMask.block_mask): only a type here
    from masklab.masks.attention import AttnMask


ADDITIVE_MASK_MAX = -1e4  # BERT's -10000 and fp16's minimum (-65504, also after an upcast) are masks, not biases


def _got(value: object) -> str:
    return str(value.dtype) if isinstance(value, Tensor) else type(value).__name__


def _require_tensor(name: str, value: object) -> None:
    if not isinstance(value, Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(value).__name__}")


def _require_bool(name: str, value: Tensor) -> Tensor:
    if not isinstance(value, Tensor) or value.dtype != torch.bool:
        if name == "blocked":
            raise ValueError(
                f"blocked must be a bool tensor (True = query may NOT attend to key), got {_got(value)}; convert "
                "an additive float mask with masklab.masks.from_additive, an SDPA bool mask (True = attend) with "
                "masklab.masks.from_sdpa"
            )
        raise ValueError(f"{name} must be a bool tensor (masklab polarity: True = hidden/blocked), got {_got(value)}")
    return value


def require_blocked(blocked: object) -> Tensor:
    """``blocked`` itself when it is a bool tensor (True = may not attend); else a ValueError naming the converters."""
    return _require_bool("blocked", blocked)  # type: ignore[arg-type]


def to_sdpa(blocked: Tensor) -> Tensor:
    """``blocked`` (True = may not attend) -> SDPA bool ``attn_mask`` (True = attend)."""
    return ~_require_bool("blocked", blocked)


def from_sdpa(attn_mask: Tensor) -> Tensor:
    """SDPA bool ``attn_mask`` (True = attend) -> ``blocked``."""
    return ~_require_bool("attn_mask", attn_mask)


def to_additive(blocked: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``blocked`` -> additive float mask: 0 where allowed, ``finfo(dtype).min`` where blocked.

    The dtype minimum (not ``-inf``) keeps softmax finite on fully blocked rows (x-transformers, HF).
    """
    _require_bool("blocked", blocked)
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    out = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device)
    return out.masked_fill_(blocked, torch.finfo(dtype).min)


def from_additive(additive: Tensor) -> Tensor:
    """Additive float mask -> ``blocked`` (True where the mask is not 0).

    Accepted as masks: 0 with ``-inf`` / values at or below ``finfo(dtype).min / 2`` (to_additive, SDPA); or 0
    with one single value ``<= -1e4`` (BERT's ``-10000``, fp16's ``-65504`` even upcast to float32). Raises
    ValueError for anything else: an attention *bias* (ALiBi's graded values, several negative levels) is not a
    mask and cannot be converted losslessly.
    """
    _require_tensor("additive mask", additive)
    if not additive.is_floating_point():
        raise ValueError(f"additive mask must be a floating tensor, got {additive.dtype}")
    blocked = additive <= torch.finfo(additive.dtype).min / 2  # -inf included
    rest = additive[(additive != 0) & ~blocked]  # NaN lands here
    if rest.numel():
        level = rest[0]
        if bool(blocked.any()) or not bool((rest == level).all()) or not bool(level <= ADDITIVE_MASK_MAX):
            raise ValueError(
                "additive mask holds values other than 0 and one large negative number (<= -1e4, or -inf); it "
                "is an attention bias, not a mask, and cannot be converted losslessly"
            )
        blocked = additive != 0
    return blocked


def to_key_padding_mask(padding: Tensor) -> Tensor:
    """``padding (B, L)`` -> ``nn.MultiheadAttention`` ``key_padding_mask`` (True = ignore that key).

    Same polarity as masklab's ``padding``; this validates shape/dtype and returns a bool copy.
    """
    _require_bool("padding", padding)
    if padding.ndim != 2:
        raise ValueError(f"padding must be (B, L), got shape {tuple(padding.shape)}")
    return padding.clone()


def from_key_padding_mask(key_padding_mask: Tensor) -> Tensor:
    """``nn.MultiheadAttention`` key_padding_mask (bool True = ignore, or additive float) -> ``padding``."""
    _require_tensor("key_padding_mask", key_padding_mask)
    if key_padding_mask.dtype == torch.bool:
        return key_padding_mask.clone()
    return from_additive(key_padding_mask)


def to_mha_attn_mask(blocked: Tensor) -> Tensor:
    """``blocked (Lq, Lk)`` or ``(B*H, Lq, Lk)`` -> ``nn.MultiheadAttention`` bool ``attn_mask``.

    MHA's bool attn_mask uses True = "not allowed to attend", the same polarity as ``blocked``.
    """
    return _require_bool("blocked", blocked).clone()


def from_mha_attn_mask(attn_mask: Tensor) -> Tensor:
    """``nn.MultiheadAttention`` attn_mask (bool True = not allowed, or additive float) -> ``blocked``."""
    _require_tensor("attn_mask", attn_mask)
    if attn_mask.dtype == torch.bool:
        return attn_mask.clone()
    return from_additive(attn_mask)


def to_hf_attention_mask(padding: Tensor, dtype: torch.dtype = torch.long) -> Tensor:
    """``padding (B, L)`` -> Hugging Face ``attention_mask`` (1 = real token to keep, 0 = padding)."""
    _require_bool("padding", padding)
    return (~padding).to(dtype)


def from_hf_attention_mask(attention_mask: Tensor) -> Tensor:
    """Hugging Face ``attention_mask`` (1 = keep, 0 = padding; any int/bool/float dtype) -> ``padding``."""
    _require_tensor("attention_mask", attention_mask)
    values = attention_mask if attention_mask.dtype == torch.bool else attention_mask.to(torch.float64)
    if attention_mask.dtype != torch.bool and bool(((values != 0) & (values != 1)).any()):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (keep)")
    return values == 0


def padding_to_blocked(padding: Tensor) -> Tensor:
    """``padding (B, Lk)`` -> ``blocked (B, 1, 1, Lk)``: no query attends to a padded key (a view, no copy)."""
    _require_bool("padding", padding)
    if padding.ndim != 2:
        raise ValueError(f"padding must be (B, L), got shape {tuple(padding.shape)}")
    return padding[:, None, None, :]


def sdpa_safe(blocked: Tensor) -> tuple[Tensor, Tensor]:
    """Prepare ``blocked`` for a fused SDPA kernel without NaN on fully blocked query rows.

    A query row that may attend to nothing has an undefined softmax; fused kernels may return NaN (and NaN
    gradients). Such rows attend to everything inside the kernel and the caller zeroes their output afterwards
    (``out.masked_fill(dead_rows, 0)``). Branch-free: no host sync, no graph break under ``torch.compile``.

    Returns:
        ``attn_mask`` bool (True = attend) for SDPA, and ``dead_rows`` bool ``(..., Lq, 1)``, True = a row with
        nothing to attend to (all False when there is none).
    """
    dead = _require_bool("blocked", blocked).all(dim=-1, keepdim=True)  # (..., Lq, 1)
    return to_sdpa(blocked & ~dead), dead


def to_block_mask(
    attn_mask: AttnMask,
    q_len: int,
    kv_len: int | None = None,
    *,
    q_offset: int | None = None,
    device: torch.device | str = "cpu",
    block_size: int = 128,
):
    """An :class:`AttnMask` -> FlexAttention ``BlockMask`` (its ``mask_mod`` returns True = attend).

    Raises RuntimeError when this torch build has no FlexAttention.
    """
    try:
        from torch.nn.attention.flex_attention import create_block_mask
    except ImportError as err:  # torch < 2.5
        raise RuntimeError("FlexAttention needs torch >= 2.5") from err
    kv_len = q_len if kv_len is None else kv_len
    attn_mask.check_kv_len(kv_len)
    offset = kv_len - q_len if q_offset is None else q_offset
    rule = attn_mask.rule

    def mask_mod(b, h, q_idx, kv_idx):
        return ~rule(b, q_idx + offset, kv_idx)

    return create_block_mask(mask_mod, attn_mask.batch, None, q_len, kv_len, device=device, BLOCK_SIZE=block_size)
