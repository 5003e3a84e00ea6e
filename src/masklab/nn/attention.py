"""Masked self-attention: one mask argument, the kernel picked from it, and a readable reference path.

Shape legend: ``B`` batch, ``H`` heads, ``Lq``/``Lk`` query/key length, ``D`` width, ``Dh = D / H``.

Mask polarity (masklab convention, stated once): attention takes ONE mask argument, ``blocked``:
    - an :class:`~masklab.masks.attention.AttnMask` rule (True = query may NOT attend to key): ``causal()``,
      ``sliding_window(w)``, ``document(ids)``, ``causal() | key_padding(padding)``, ...; or
    - a dense ``bool`` tensor broadcastable to ``(B, H, Lq, Lk)``, True = may NOT attend (padding folds in as
      :func:`~masklab.masks.convert.padding_to_blocked`, ``(B, 1, 1, Lk)``); or ``None`` (attend everywhere).
Conversion to SDPA's polarity happens in :mod:`masklab.masks.convert`. A query row with nothing to attend to
returns zeros (never NaN) on every path, forward and backward.

Which kernel runs (:func:`plan_attention`, left in ``MaskedSelfAttention.last_plan``):

- ``reference`` — explicit weights were asked for (visualisation), or the module is on the reference path;
- ``sdpa`` — no mask at all (or a plain causal rule with one query over a cache: it sees every key);
- ``sdpa_causal`` — a plain causal rule over equal lengths: SDPA's own ``is_causal`` kernel, no mask tensor;
- ``flex`` — on CUDA at long lengths, FlexAttention with a cached ``BlockMask`` skips fully blocked tiles;
- ``sdpa_mask`` — everything else: the mask as a dense boolean tensor for SDPA. On CPU this is always the
  choice for a rule: torch has no FlexAttention backward there and eager Flex materialises every score;
- ``bmm`` — on CPU, in place of ``sdpa`` / ``sdpa_mask``, for a module set to it (``cpu_kernel="bmm"``, see
  :func:`use_cpu_attention`): two batched GEMMs around a softmax (:func:`bmm_attention`). SDPA's CPU flash
  kernel tiles for long sequences; at a few tokens per row (table cells) the plain products were ~1.8x
  faster forward + backward. Which one a model trains with is measured per machine
  (:mod:`masklab.nn.cpu_attention_probe`), not assumed.

The plan reads only Python values (rule names, lengths, device), so it adds no host sync and no graph break
under ``torch.compile``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.masks.attention import AttnMask
from masklab.masks.convert import require_blocked, sdpa_safe

Backend = Literal["sdpa", "reference"]
CpuKernel = Literal["sdpa", "bmm"]
Kernel = Literal["reference", "sdpa", "sdpa_causal", "sdpa_mask", "flex", "bmm"]
FLEX_MIN_LEN = 1024  # below this, dense-mask SDPA beats Flex's block bookkeeping (bench/attention.py)


# ------------------------------------------------------------------------------------------------ kernels
def reference_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    blocked: Tensor | None = None,
    *,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Readable attention: ``softmax(q kᵀ * scale + mask) v`` with explicit weights.

    Args:
        q: ``(B, H, Lq, Dh)``; k, v: ``(B, H, Lk, Dh)``; blocked: bool broadcastable to ``(B, H, Lq, Lk)``.

    Returns:
        ``out (B, H, Lq, Dh)`` and ``weights (B, H, Lq, Lk)``; blocked pairs have weight exactly 0 and fully
        blocked rows are all zeros.
    """
    if blocked is not None:
        require_blocked(blocked)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    # Scaled before the product, as SDPA does: q.k itself can exceed float16's range where the result does not.
    scores = (q * scale) @ k.transpose(-2, -1)  # (B, H, Lq, Lk)
    if blocked is not None:
        # The dtype minimum rather than -inf keeps a fully blocked row finite; it is zeroed below.
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1)
    if blocked is not None:
        weights = weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (B, H, Lq, Dh), (B, H, Lq, Lk)


def sdpa_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    blocked: Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
) -> Tensor:
    """Fused attention via ``F.scaled_dot_product_attention``; same contract as :func:`reference_attention`.

    ``is_causal`` (no ``blocked``, ``Lq == Lk``) uses the kernel's own causal path, with no mask tensor.
    """
    if is_causal and q.shape[-2] != k.shape[-2]:
        # SDPA's is_causal is top-left aligned there; masklab's causal rule is bottom-right (KV-cache decoding).
        raise ValueError(f"is_causal needs as many queries as keys (got {q.shape[-2]} and {k.shape[-2]}); pass "
                         "blocked=causal().dense(Lq, Lk) for queries that are the last Lq of the keys")  # fmt: skip
    if blocked is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal, dropout_p=dropout_p, scale=scale)
    if is_causal:
        raise ValueError("pass either is_causal or blocked, not both (fold causality into blocked)")
    attn_mask, dead = sdpa_safe(blocked)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale)
    return out.masked_fill(dead, 0.0)  # (B, H, Lq, Dh); fully blocked rows are zero


def bmm_attention(q: Tensor, k: Tensor, v: Tensor, blocked: Tensor | None = None, *, dropout_p: float = 0.0) -> Tensor:
    """Attention as two batched GEMMs around a softmax over an additive mask (no weights returned); same
    contract as :func:`reference_attention`'s output (fully blocked rows are zeros), default scale."""
    B, H, L, Dh = q.shape
    Lk = k.shape[-2]
    qf, kf, vf = q.reshape(B * H, L, Dh), k.reshape(B * H, Lk, Dh), v.reshape(B * H, Lk, Dh)
    if blocked is None:
        scores = torch.bmm(qf * (1.0 / math.sqrt(Dh)), kf.transpose(1, 2))  # (B*H, L, Lk); scaled first (float16)
        dead = None
    else:
        attend, dead = sdpa_safe(blocked)  # True = attend; fully blocked rows attend to all, zeroed below
        bias = torch.zeros(attend.shape, dtype=q.dtype, device=q.device).masked_fill_(~attend, float("-inf"))
        bias = bias.expand(B, H, L, Lk).reshape(B * H, L, Lk)
        scores = torch.baddbmm(bias, qf, kf.transpose(1, 2), alpha=1.0 / math.sqrt(Dh))
    weights = scores.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = torch.bmm(weights, vf).view(B, H, L, Dh)
    return out if dead is None else out.masked_fill(dead, 0.0)


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


_COMPILED_FLEX: Callable[..., Tensor] | None = None


def flex_attention(q: Tensor, k: Tensor, v: Tensor, block_mask: Any) -> Tensor:
    """FlexAttention, compiled once per process on CUDA (eager elsewhere: correct, unfused)."""
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention as flex

    if q.device.type != "cuda":
        return flex(q, k, v, block_mask=block_mask)
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex, dynamic=False)
    return _COMPILED_FLEX(q, k, v, block_mask=block_mask)


class BlockMaskCache:
    """LRU cache of FlexAttention ``BlockMask`` for rules that do not read per-batch data.

    Keyed by the rule's name (rules are value-like: ``causal``, ``sliding_window(256)``), lengths and device.
    Rules with per-row data (padding, document ids) change every batch and are never cached.
    """

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self._store: OrderedDict[tuple, object] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, rule: AttnMask, q_len: int, kv_len: int, device: torch.device):
        if rule.batch is not None:
            self.misses += 1
            return rule.block_mask(q_len, kv_len, device=device)
        key = (rule.name, q_len, kv_len, str(device))
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        block_mask = rule.block_mask(q_len, kv_len, device=device)
        self._store[key] = block_mask
        if len(self._store) > self.maxsize:
            self._store.popitem(last=False)
        return block_mask


BLOCK_MASKS = BlockMaskCache()


# ------------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class AttentionPlan:
    """Which kernel ran and why (``MaskedSelfAttention.last_plan``)."""

    kernel: Kernel
    reason: str


def plan_attention(
    blocked: AttnMask | Tensor | None,
    *,
    q_len: int,
    kv_len: int,
    device: torch.device,
    dropout: bool = False,
    return_weights: bool = False,
    reference: bool = False,
    flex_min_len: int = FLEX_MIN_LEN,
    cpu_kernel: CpuKernel = "sdpa",
) -> AttentionPlan:
    """Choose a kernel from the one mask argument (see the module doc); ``dropout``: attention dropout is on
    (Flex has none); ``cpu_kernel``: the module's CPU choice for plain and dense-mask attention. Reads only
    the rule's name and the lengths: never the mask's values."""
    if return_weights or reference:
        why = "attention weights requested" if return_weights else "module set to the reference path"
        return AttentionPlan("reference", why)
    plan = _fused_plan(blocked, q_len=q_len, kv_len=kv_len, device=device, dropout=dropout, flex_min_len=flex_min_len)
    if device.type == "cpu" and cpu_kernel == "bmm" and plan.kernel in ("sdpa", "sdpa_mask"):
        return AttentionPlan("bmm", f"CPU kernel bmm (measured faster for this model here); else {plan.reason}")
    return plan


def _fused_plan(
    blocked: AttnMask | Tensor | None,
    *,
    q_len: int,
    kv_len: int,
    device: torch.device,
    dropout: bool,
    flex_min_len: int,
) -> AttentionPlan:
    if blocked is None:
        return AttentionPlan("sdpa", "no mask")
    if isinstance(blocked, Tensor):
        return AttentionPlan("sdpa_mask", "a dense blocked tensor was given")
    if blocked.name == "causal" and q_len == kv_len:
        return AttentionPlan("sdpa_causal", "plain causal mask: SDPA is_causal kernel, no mask tensor")
    if blocked.name == "causal" and q_len == 1:
        return AttentionPlan("sdpa", "one new query after the cache: causal blocks nothing")
    if device.type != "cuda":
        return AttentionPlan("sdpa_mask", f"{device.type}: FlexAttention has no fused kernel or backward here")
    if dropout:
        return AttentionPlan("sdpa_mask", "attention dropout is on (FlexAttention has none)")
    if not flex_available():
        return AttentionPlan("sdpa_mask", f"torch {torch.__version__} has no FlexAttention")
    if kv_len < flex_min_len:
        return AttentionPlan("sdpa_mask", f"length {kv_len} < {flex_min_len}: dense mask is cheaper than blocks")
    return AttentionPlan("flex", f"block-sparse rule {blocked.name} at length {kv_len}: Flex skips blocked tiles")


def check_blocked(blocked: AttnMask | Tensor, shape: tuple[int, int, int, int]) -> None:
    """ValueError unless the one mask argument fits attention of ``shape`` ``(B, H, Lq, Lk)``: a rule over that
    batch and key length, or a bool tensor of 2 to 4 dims that broadcasts to it. Reads shapes only, never values."""
    if isinstance(blocked, AttnMask):
        if blocked.batch not in (None, shape[0]):
            raise ValueError(f"attention mask {blocked.name} is for batch {blocked.batch}, the input has {shape[0]}")
        return blocked.check_kv_len(shape[3])
    dims = tuple(require_blocked(blocked).shape)
    if not 2 <= len(dims) <= 4 or any(n not in (1, want) for n, want in zip(dims[::-1], shape[::-1], strict=False)):
        raise ValueError(
            f"blocked of shape {dims} does not broadcast to (B, H, Lq, Lk) = {shape} (2 to 4 dims; a "
            "padding (B, L) goes through key_padding(padding), a per-example mask is (B, 1, Lq, Lk))"
        )


def dense_blocked(blocked: AttnMask | Tensor | None, q_len: int, kv_len: int, device: torch.device) -> Tensor | None:
    """The one mask argument as a dense ``bool`` tensor broadcastable to ``(B, H, Lq, Lk)`` (or None).

    Rules are bottom-right aligned: the queries are the last ``Lq`` of ``Lk`` positions (KV-cache decoding).
    """
    if blocked is None or isinstance(blocked, Tensor):
        return blocked
    return blocked.dense(q_len, kv_len, device=device)  # (B|1, 1, Lq, Lk)


# ------------------------------------------------------------------------------------------------ the module
class KVCache:
    """Keys and values of the positions seen so far by one attention layer, grown in place.

    ``k``/``v``: ``(B, H, T, Dh)`` after the first :meth:`update`.
    """

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k, v (B, H, Lnew, Dh)`` and return all keys/values ``(B, H, T + Lnew, Dh)``."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection.

    Args:
        dim: model width ``D``; heads: ``H`` (must divide D).
        backend: ``"sdpa"`` (fused kernels; the training path) or ``"reference"`` (explicit weights).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attn_dropout: float = 0.0,
        proj_dropout: float = 0.0,
        backend: Backend = "sdpa",
    ) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        if backend not in ("sdpa", "reference"):
            raise ValueError(f"backend must be 'sdpa' or 'reference', got {backend!r}")
        self.heads = heads
        self.head_dim = dim // heads
        self.backend: Backend = backend
        self.cpu_kernel: CpuKernel = "sdpa"  # set per model by use_cpu_attention (a measured choice)
        self.attn_dropout = attn_dropout
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(
        self,
        x: Tensor,
        *,
        blocked: AttnMask | Tensor | None = None,
        cache: KVCache | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend ``x (B, L, D)`` to itself (plus cached past keys when ``cache`` is given).

        Args:
            blocked: the one mask argument (module doc): an ``AttnMask`` rule, a dense bool tensor
                broadcastable to ``(B, H, L, Lk)`` (Lk includes cached positions), True = may NOT attend; or None.
                Dense masks broadcast from the right (2-D ``(L, Lk)``, 3-D ``(H, L, Lk)``): a per-example mask
                is ``(B, 1, L, Lk)``, a padding ``(B, L)`` goes through ``key_padding`` (as is, B == L passes).
            cache: a :class:`KVCache` to read past keys/values from and append this step's to.
            return_weights: also return ``weights (B, H, L, Lk)``; computed on the reference path for this
                call only, so the training path is untouched.

        Returns:
            ``(B, L, D)``, or ``((B, L, D), weights)`` with ``return_weights=True``. The kernel that ran and why
            is left in :attr:`last_plan`.
        """
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        q, k, v = qkv.unbind(0)  # (B, H, L, Dh) each
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H, Lk, Dh)
        kv_len = k.shape[-2]
        if blocked is not None:
            check_blocked(blocked, (B, self.heads, L, kv_len))
        dropout_p = self.attn_dropout if self.training else 0.0
        plan = plan_attention(
            blocked, q_len=L, kv_len=kv_len, device=x.device, dropout=dropout_p > 0,
            return_weights=return_weights, reference=self.backend == "reference", cpu_kernel=self.cpu_kernel,
        )  # fmt: skip
        self.last_plan: AttentionPlan = plan
        weights: Tensor | None = None
        if plan.kernel == "flex":
            assert isinstance(blocked, AttnMask)
            out = flex_attention(q, k, v, BLOCK_MASKS.get(blocked, L, kv_len, x.device))
        elif plan.kernel == "bmm":
            out = bmm_attention(q, k, v, dense_blocked(blocked, L, kv_len, x.device), dropout_p=dropout_p)
        elif plan.kernel in ("sdpa", "sdpa_causal"):
            out = sdpa_attention(q, k, v, is_causal=plan.kernel == "sdpa_causal", dropout_p=dropout_p)
        else:
            dense = dense_blocked(blocked, L, kv_len, x.device)  # bool, broadcastable to (B, H, L, Lk)
            if plan.kernel == "reference":
                out, weights = reference_attention(q, k, v, dense, dropout_p=dropout_p)
            else:
                out = sdpa_attention(q, k, v, dense, dropout_p=dropout_p)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, L, D)))  # (B, L, D)
        if return_weights:
            assert weights is not None  # return_weights always plans the reference kernel
            return out, weights
        return out


def use_cpu_attention(model: nn.Module, kernel: CpuKernel) -> nn.Module:
    """Set every :class:`MaskedSelfAttention` of ``model`` to run ``kernel`` on CPU (``sdpa`` | ``bmm``; no
    effect on other devices or on the reference path); returns ``model``."""
    if kernel not in ("sdpa", "bmm"):
        raise ValueError(f"CPU attention kernel must be 'sdpa' or 'bmm', got {kernel!r}")
    for module in model.modules():
        if isinstance(module, MaskedSelfAttention):
            module.cpu_kernel = kernel
    return model
