"""PatchTST (Nie et al. 2023) masked pretraining on variable-length series with padded time steps.

Shape legend: ``B`` batch, ``T`` steps, ``C`` channels, ``L`` patches per channel, ``P`` steps per patch,
``D`` width. Masks: ``masked`` True = hidden patch; ``padding`` True = padded step / patch; ``observed`` True =
a real observed value.

The algorithm: ``prepare`` (optionally ``asinh``-compress, instance-normalise over real observed steps, patchify
each channel) ->
``sample_mask`` (random or tail patches, drawn through :mod:`masklab.masks.strategies`) -> ``encode`` (hidden
patches zeroed, as HF's ``mask_value=0``; each channel a separate sequence; padded patches blocked as attention
keys) -> ``head`` (patch values) -> loss on hidden, real steps. Padded steps are replaced before anything
reads them, so they change no output and get exactly zero gradient; padded patches never enter attention,
losses, statistics or pooling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput
from masklab.data.series import SeriesBatch
from masklab.masks import visible_mean
from masklab.masks.convert import padding_to_blocked
from masklab.masks.strategies import MaskRequest, resolve
from masklab.models.series.config import MASK_KINDS, SeriesConfig, from_preset
from masklab.nn import Encoder
from masklab.tokenizers.series import InstanceNorm, instance_norm, patch_padding, patchify, unpatchify


def sincos_table(length: int, dim: int) -> Tensor:
    """HF ``PatchTSTPositionalEncoding`` "sincos" init: sin/cos interleaved, then standardised to std 0.1."""
    pe = torch.zeros(length, dim)
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * -(torch.log(torch.tensor(10000.0)) / dim))
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    pe = pe - pe.mean()
    return pe / (pe.std() * 10)


def _signed_log(x: Tensor) -> Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


@dataclass(frozen=True)
class SeriesInput:
    """A batch ready for the encoder: ``patches`` float (B, C, L, P) normalised; ``target_steps`` bool
    (B, C, L, P) True = a step whose reconstruction is scored; ``padding`` bool (B, L) True = padded patch;
    ``norm`` the statistics to undo the normalisation; ``length`` T."""

    patches: Tensor
    target_steps: Tensor
    padding: Tensor
    norm: InstanceNorm
    length: int


@dataclass(frozen=True)
class SeriesOutput:
    """``loss`` scalar; ``pred`` float (B, C, L, P) normalised patch values; ``masked`` bool (B, C, L)."""

    loss: Tensor
    pred: Tensor
    masked: Tensor


class PatchTST(nn.Module):
    """Channel-independent masked patch transformer (PatchTST's self-supervised model)."""

    kind: ClassVar[str] = "series"

    def __init__(self, config: SeriesConfig) -> None:
        super().__init__()
        self.config = config
        group = config.channels if config.channel_mixing else 1  # channels per token
        width = config.patch_len * group  # P, or C * P when mixing
        self.patch_embed = Linear(width + (2 * group if config.stats_input else 0), config.dim)
        self.pos_embed = nn.Parameter(sincos_table(config.max_patches, config.dim))  # (Lmax, D), learned
        self.encoder = Encoder(config.encoder_config())
        self.head = Linear(config.dim, width)

    @classmethod
    def from_config(cls, config: SeriesConfig | Mapping[str, Any]) -> PatchTST:
        """An untrained model from its config or the dict a run saved (``config.json["model"]``)."""
        return cls(SeriesConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> PatchTST:
        """An untrained model of preset ``name`` (:data:`~masklab.models.series.config.PRESETS`) with
        ``overrides``; ``channels`` (C of the data) is required."""
        return cls(from_preset(name, **overrides))

    # ----------------------------------------------------------------------------------------- the algorithm
    def prepare(self, batch: SeriesBatch, masked: Tensor | None = None) -> SeriesInput:
        """Normalise each series and channel over its real observed steps and cut it into patches.

        ``masked`` bool (B, C, L), True = hidden: with ``config.norm_visible`` the steps of hidden patches
        leave the normalisation statistics (ignored otherwise)."""
        cfg = self.config
        values, padding, observed = batch.values, batch.padding, batch.observed
        if values.ndim != 3 or values.shape[-1] != cfg.channels:
            raise ValueError(f"values must be (B, T, {cfg.channels}), got {tuple(values.shape)}")
        if padding.shape != values.shape[:2] or observed.shape != values.shape:
            raise ValueError(f"padding must be (B, T) and observed (B, T, C) for values {tuple(values.shape)}")
        real = ~padding[..., None]  # (B, T, 1)
        seen = observed & real  # (B, T, C)
        values = torch.where(seen, values, 0.0)  # nothing unobserved or padded is read past this line
        if cfg.input_transform == "asinh":  # elementwise, after the replacement: padded steps stay 0
            values = torch.asinh(values / cfg.input_scale)
        pad = patch_padding(padding, cfg.patch_len, cfg.stride)  # (B, L)
        stats = seen
        if masked is not None and cfg.norm_visible:
            cover = masked[..., None].expand(*masked.shape, cfg.patch_len).to(values.dtype)  # (B, C, L, P)
            stats = seen & ~(unpatchify(cover, values.shape[1], cfg.stride, pad) > 0)  # (B, T, C)
        norm = instance_norm(values, stats, min_scale=cfg.min_scale, enabled=cfg.scaling)
        x = norm.normed if cfg.missing == "zero" else torch.where(seen, norm.normed, 0.0)
        x = torch.where(real, x, 0.0)  # (B, T, C)
        patches = patchify(x, cfg.patch_len, cfg.stride)  # (B, C, L, P)
        scored = seen if not cfg.loss_on_missing else real.expand_as(seen)
        target_steps = patchify(scored, cfg.patch_len, cfg.stride)  # (B, C, L, P)
        if pad.shape[1] > cfg.max_patches:
            raise ValueError(
                f"series of {values.shape[1]} steps make {pad.shape[1]} patches; this model covers at most "
                f"max_patches={cfg.max_patches} (crop the series or train with a larger max_patches)"
            )
        return SeriesInput(patches, target_steps, pad, norm, values.shape[1])

    def sample_mask(self, inputs: SeriesInput, generator: torch.Generator | None, kind: str | None = None) -> Tensor:
        """``masked`` bool (B, C, L), True = hidden; padded patches are never hidden.

        ``kind`` (default ``config.mask_kind``): ``random`` and ``tail`` resolve through
        :mod:`masklab.masks.strategies` (each channel a row, the padded patches protected); ``mixed`` draws one
        of the two per series (all its channels share it). Random noise is drawn for all ``max_patches``
        positions and cut to ``L``, so a series' mask does not depend on how far its batch is padded (and
        equals HF's draw when ``L == max_patches``); the noise is drawn first whatever the kind."""
        cfg = self.config
        kind = kind or cfg.mask_kind
        B, C, L, _ = inputs.patches.shape
        pad_rows = inputs.padding.repeat_interleave(C, dim=0)  # (B*C, L)
        noise = torch.rand(B, C, cfg.max_patches, generator=generator)[..., :L].reshape(B * C, L)
        device = inputs.patches.device
        if kind not in MASK_KINDS:
            raise ValueError(f"mask kind must be random, tail or mixed, got {kind!r}")

        rows = C
        if cfg.channel_mixing:  # one row per series (its first channel's noise): a patch hides all channels
            rows, pad_rows, noise = 1, inputs.padding, noise.reshape(B, C, L)[:, 0]

        def draw(name: str) -> Tensor:  # (B*rows, L) on ``device``
            options = {"count": cfg.tail_patches} if name == "tail" else {}  # tail: the last real patches
            request = MaskRequest(B * rows, L, cfg.mask_ratio, protected=pad_rows, device=device, options=options,
                                  noise=noise if name == "random" else None)  # fmt: skip
            return resolve(name).draw(request, generator).masked

        if kind == "mixed":  # one coin per series: all its channels share the kind
            use_tail = (torch.rand(B, generator=generator) < 0.5).repeat_interleave(rows)[:, None].to(device)
            masked = torch.where(use_tail, draw("tail"), draw("random"))
        else:
            masked = draw(kind)
        return masked.reshape(B, rows, L).expand(B, C, L)

    def draw(self, batch: SeriesBatch, generator: torch.Generator) -> Tensor:
        """This step's random draws, made eagerly on the host: the training mask ``masked`` bool (B, C, L)."""
        return self.sample_mask(self.prepare(batch), generator)

    def encode(self, patches: Tensor, padding: Tensor, masked: Tensor | None = None,
               norm: InstanceNorm | None = None) -> Tensor:  # fmt: skip
        """``patches (B, C, L, P)``, ``padding (B, L)``, ``masked (B, C, L)`` -> tokens ``(B, C', L, D)``:
        ``C' = C`` channel-independent tokens, ``C' = 1`` with ``channel_mixing`` (a patch hidden in any channel
        is hidden in all). ``norm``: the statistics ``config.stats_input`` appends to every token's input."""
        B, C, L, _ = patches.shape
        if masked is not None:
            if self.config.channel_mixing:  # one token per patch: hidden in any channel = hidden in all
                masked = masked.any(dim=1, keepdim=True).expand(B, C, L)
            patches = patches.masked_fill(masked[..., None], 0.0)  # HF mask_value = 0
        if self.config.stats_input:
            if norm is None:
                raise ValueError("this model (stats_input=True) needs the normalisation statistics: pass norm=")
            stats = torch.stack([_signed_log(norm.loc[:, 0]), torch.log(norm.scale[:, 0])], dim=-1)  # (B, C, 2)
            patches = torch.cat([patches, stats[:, :, None].expand(B, C, L, 2)], dim=-1)  # (B, C, L, P + 2)
        if self.config.channel_mixing:
            patches = patches.permute(0, 2, 1, 3).reshape(B, 1, L, -1)  # (B, 1, L, C * (P [+ 2]))
            C = 1
        x = self.patch_embed(patches) + self.pos_embed[:L]  # (B, C, L, D)
        x = x.reshape(B * C, L, -1)  # (B*C, L, D): every channel (or every series, when mixing) a sequence
        pad = padding.repeat_interleave(C, dim=0)  # (B*C, L)
        # Eager only: an all-False mask would keep SDPA off its fastest (mask-free) kernel. Compiled, exported or
        # traced, the mask is always built: no host sync, and nothing of this batch's padding is baked in.
        padded = torch.compiler.is_compiling() or torch.jit.is_tracing() or bool(pad.any())
        x = self.encoder(x, blocked=padding_to_blocked(pad) if padded else None)
        return x.reshape(B, C, L, -1)

    def decode(self, tokens: Tensor) -> Tensor:
        """Tokens ``(B, C', L, D)`` (:meth:`encode`) -> normalised patch values ``(B, C, L, P)``."""
        pred = self.head(tokens)  # (B, C', L, P) or (B, 1, L, C * P)
        if not self.config.channel_mixing:
            return pred
        B, _, L, _ = pred.shape
        return pred.reshape(B, L, self.config.channels, -1).permute(0, 2, 1, 3)

    def predict(self, inputs: SeriesInput, masked: Tensor | None) -> Tensor:
        """Normalised patch values ``(B, C, L, P)`` of ``inputs`` with ``masked (B, C, L)`` patches hidden."""
        return self.decode(self.encode(inputs.patches, inputs.padding, masked, inputs.norm))

    def forward_loss(self, inputs: SeriesInput, pred: Tensor, masked: Tensor) -> Tensor:
        """Mean squared error over the scored steps of hidden, real patches (normalised units)."""
        scored = inputs.target_steps & (masked & ~inputs.padding[:, None])[..., None]  # (B, C, L, P)
        err = torch.where(scored, (pred - inputs.patches) ** 2, 0.0)
        return err.sum() / scored.sum().clamp_min(1)

    def forward(self, batch: SeriesBatch, masked: Tensor) -> SeriesOutput:
        inputs = self.prepare(batch, masked)
        pred = self.predict(inputs, masked)  # (B, C, L, P)
        return SeriesOutput(self.forward_loss(inputs, pred, masked), pred, masked)

    def training_loss(
        self, batch: SeriesBatch, generator: torch.Generator, *, drawn: Tensor | None = None
    ) -> LossOutput:
        """``fit`` hook: the masked-patch MSE and the share of real patches hidden.

        ``drawn``: this step's :meth:`draw`, if made outside (``torch.compile`` cannot trace a
        ``torch.Generator``, so a compiled step takes its draws as an argument); drawn here otherwise.
        """
        inputs = self.prepare(batch)
        masked = self.sample_mask(inputs, generator) if drawn is None else drawn
        if self.config.norm_visible:  # the statistics of the visible steps only (the draw reads no value)
            inputs = self.prepare(batch, masked)
        pred = self.predict(inputs, masked)
        loss = self.forward_loss(inputs, pred, masked)
        share = masked.float().sum() / (~inputs.padding).float().sum().clamp_min(1) / masked.shape[1]
        return LossOutput(loss, {"masked_share": share.detach()})

    # --------------------------------------------------------------------------------------- inference
    @property
    def embed_dim(self) -> int:
        """Width of :meth:`embed`: ``C' * D * k + 2 * C`` (``C' = 1`` with channel mixing, else ``C``;
        ``k = 2`` for ``mean-max`` pooling, else 1); ``C * (D + 2)`` for the original model."""
        cfg = self.config
        sequences = 1 if cfg.channel_mixing else cfg.channels
        return sequences * cfg.dim * (2 if cfg.pool == "mean-max" else 1) + 2 * cfg.channels

    def embed(self, batch: SeriesBatch) -> Tensor:
        """Features ``(B, embed_dim)``: the tokens of each sequence (channel, or series when mixing) pooled over
        its real patches (no masking: mean, or mean and max), then per channel the instance-normalisation
        statistics the encoder never sees (signed ``log1p`` of the mean, ``log`` of the scale): level and
        amplitude often tell classes apart."""
        inputs = self.prepare(batch)
        tokens = self.encode(inputs.patches, inputs.padding, norm=inputs.norm)  # (B, C', L, D)
        pad = inputs.padding[:, None, :, None].expand(-1, tokens.shape[1], -1, 1)  # (B, C', L, 1)
        pooled = [visible_mean(tokens, pad, dim=2).flatten(1)]  # (B, C' * D)
        if self.config.pool == "mean-max":  # padded tokens are replaced, never compared: zero gradient there
            pooled.append(torch.where(pad, float("-inf"), tokens).amax(dim=2).flatten(1))
        loc, scale = inputs.norm.loc[:, 0], inputs.norm.scale[:, 0]  # (B, C)
        stats = torch.cat([_signed_log(loc), torch.log(scale)], dim=1)  # (B, 2C)
        return torch.cat([*pooled, stats], dim=1)  # (B, embed_dim)

    def reconstruct(self, batch: SeriesBatch, masked: Tensor) -> Tensor:
        """Predicted values ``(B, T, C)`` in the data's units with ``masked (B, C, L)`` patches hidden
        (visible patches are reconstructed too; callers choose which steps to use)."""
        inputs = self.prepare(batch, masked)
        pred = self.predict(inputs, masked)  # (B, C, L, P)
        out = inputs.norm.invert(unpatchify(pred, inputs.length, self.config.stride, inputs.padding))
        return torch.sinh(out) * self.config.input_scale if self.config.input_transform == "asinh" else out

    def steps_to_patches(self, steps: Tensor) -> Tensor:
        """``steps`` bool (B, T, C) -> bool (B, C, L): True for every patch holding a True step."""
        return patchify(steps, self.config.patch_len, self.config.stride).any(dim=-1)
