"""Masked autoencoder for images (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners").

The algorithm as code (MAE ``models_mae.py``): ``patchify -> sample_mask -> forward_encoder ->
forward_decoder -> forward_loss``. The encoder sees only the visible patches ``(B, 1 + V, D)`` (plus a CLS
token); the lightweight decoder re-inserts a shared mask token at every hidden position with ``ids_restore``,
adds fixed 2-D sin-cos position embeddings and predicts the pixels of every patch; the loss is the MSE on the
hidden patches only (optionally against per-patch normalised pixels, ``norm_pix_loss``, Sec. 3 of the paper).

``variant="simmim"`` (Xie et al. 2022) instead replaces hidden patches by a learned mask token *inside* the
encoder, which then runs on all ``L`` tokens; it is the "encode all tokens" baseline of the MAE speed argument.
``objective="classify"`` turns the same encoder into a classifier (global average pool + linear head) for
fine-tuning; its decoder is not built.

Shape legend: ``B`` batch, ``C`` channels, ``L`` patches, ``V`` visible patches, ``D``/``Dd`` encoder/decoder
width, ``P`` values per patch. Mask polarity: ``masked: bool (B, L)``, True = hidden / to be predicted.
Images enter every public method as pixels in [0, 1]; the model applies its own ``pixel_mean``/``pixel_std``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklab.core.contract import LossOutput
from masklab.masks.attention_guided import attention_guided_masking, token_importance
from masklab.masks.generators import MaskSample, block_masking, grid_masking, ids_from_masked, random_masking
from masklab.masks.ops import masked_loss
from masklab.models.mae.masker import AdversarialMasking, LearnedMaskerConfig
from masklab.nn.blocks import Encoder, TransformerConfig
from masklab.nn.cpu_linear import Linear
from masklab.nn.pos_embed import sincos_2d
from masklab.tokenizers.patches import patch_grid, patchify, unpatchify

MASK_KINDS = ("random", "block", "grid", "learned", "attention-high", "attention-low")
VARIANTS = ("mae", "simmim")
OBJECTIVES = ("reconstruct", "classify")
POOLS = ("mean", "cls")
NORM_PIX_EPS = 1e-6  # MAE forward_loss: (var + 1e-6) ** 0.5


@dataclass(frozen=True)
class MAEConfig:
    """Everything that rebuilds an :class:`MAE` (saved as ``config.json["model"]``)."""

    image_size: tuple[int, int] = (28, 28)  # (H, W), multiples of patch_size
    patch_size: int = 4
    channels: int = 1
    dim: int = 128
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    drop_path: float = 0.0
    mask_ratio: float = 0.75  # fraction of patches hidden from the encoder while training
    mask_kind: str = "random"  # random | block (BEiT) | grid | learned | attention-high | attention-low
    masker: dict[str, Any] | None = None  # learned: LearnedMaskerConfig overrides (dim, spread_weight, ...)
    attention_noise: float = 0.25  # attention-*: tie-breaking noise on min-max scaled scores (0 = none)
    norm_pix_loss: bool = False
    variant: str = "mae"  # mae: encoder sees visible patches only | simmim: encoder sees mask tokens
    objective: str = "reconstruct"  # reconstruct (pretraining) | classify (fine-tuning)
    num_classes: int = 0
    pool: str = "mean"  # features: mean of the patch tokens | the CLS token
    pixel_mean: tuple[float, ...] | None = None  # per channel; None = 0
    pixel_std: tuple[float, ...] | None = None  # per channel; None = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if len(self.image_size) != 2:
            raise ValueError(f"image_size must be (height, width), got {self.image_size!r}")
        patch_grid(*self.image_size, self.patch_size, what=f"image_size {self.image_size}")
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {self.channels}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(
                f"mask ratio must be in [0, 1), got {self.mask_ratio!r} (a ratio of 1 would hide every patch)"
            )
        for name, value, allowed in (
            ("mask_kind", self.mask_kind, MASK_KINDS),
            ("variant", self.variant, VARIANTS),
            ("objective", self.objective, OBJECTIVES),
            ("pool", self.pool, POOLS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(self, name)
            if value is not None and len(value) != self.channels:
                raise ValueError(f"{name} has {len(value)} entries for {self.channels} channel(s)")
        if self.pixel_std is not None and min(self.pixel_std) <= 0:
            raise ValueError(f"pixel_std must be positive, got {self.pixel_std}")
        if self.objective == "classify" and self.num_classes < 2:
            raise ValueError(f"objective 'classify' needs num_classes >= 2, got {self.num_classes}")
        if self.objective == "reconstruct":
            keep = int(self.num_patches * (1 - self.mask_ratio))
            if keep < 1 or keep == self.num_patches:
                raise ValueError(
                    f"mask ratio {self.mask_ratio} keeps {keep} of {self.num_patches} patches visible; "
                    "pretraining needs at least one visible and one hidden patch"
                )
            if self.mask_kind == "grid":
                _ = self.grid_cell  # validates the ratio and the grid
            if self.mask_kind == "learned":
                self.masker_config()  # validates the overrides
        if self.masker is not None and self.mask_kind != "learned":
            raise ValueError(f"masker settings only apply to mask_kind='learned', not {self.mask_kind!r}")
        if self.attention_noise < 0:
            raise ValueError(f"attention_noise must be >= 0, got {self.attention_noise}")
        self.encoder_config()  # validates dim/heads/depth
        if self.objective == "reconstruct":
            self.decoder_config()

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(*self.image_size, self.patch_size)

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.channels

    def masker_config(self) -> LearnedMaskerConfig:
        """The learned masker (``mask_kind="learned"``): it scores the normalised patches ``(B, L, P)``."""
        overrides = dict(self.masker or {})
        clash = sorted({"in_dim", "max_tokens"} & set(overrides))
        if clash:
            raise ValueError(f"masker settings {clash} follow from the image and patch size; leave them out")
        return LearnedMaskerConfig.from_config({"in_dim": self.patch_dim, "max_tokens": self.num_patches,
                                                **overrides})  # fmt: skip

    @property
    def grid_cell(self) -> int:
        """Side of the square that keeps one visible patch under ``mask_kind="grid"``: ratio = 1 - 1/cell²."""
        cell = round((1.0 - self.mask_ratio) ** -0.5)
        if cell < 2 or abs(1.0 - 1.0 / cell**2 - self.mask_ratio) > 1e-6:
            raise ValueError(f"grid masking needs mask ratio 1 - 1/k² (0.75, 0.888…), got {self.mask_ratio}")
        gh, gw = self.grid
        if gh % cell or gw % cell:
            raise ValueError(
                f"grid masking with {cell}x{cell} cells needs a patch grid divisible by {cell}, got {gh}x{gw}"
            )
        return cell

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.dim,
            depth=self.depth,
            heads=self.heads,
            mlp_ratio=self.mlp_ratio,
            drop_path=self.drop_path,
            norm_eps=self.norm_eps,
        )

    def decoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            dim=self.decoder_dim,
            depth=self.decoder_depth,
            heads=self.decoder_heads,
            mlp_ratio=self.mlp_ratio,
            norm_eps=self.norm_eps,
        )

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> MAEConfig:
        """Rebuild from :meth:`to_dict` (a ``"kind"`` entry is ignored; unknown keys are an error)."""
        values = {k: v for k, v in values.items() if k != "kind"}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MAE config fields {unknown}; known: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with ``"kind": "mae"`` (what ``fit`` stores as ``config.json["model"]``)."""
        out = dataclasses.asdict(self)
        out["image_size"] = list(self.image_size)
        for name in ("pixel_mean", "pixel_std"):
            out[name] = None if out[name] is None else list(out[name])
        return {"kind": "mae", **out}


@dataclass
class MAEOutput:
    """One masked forward pass: ``loss`` scalar, ``pred (B, L, P)`` (model space, per-patch normalised when
    ``norm_pix_loss``), ``masked bool (B, L)`` True = hidden, ``ids_restore long (B, L)``."""

    loss: Tensor
    pred: Tensor
    masked: Tensor
    ids_restore: Tensor


def _init_weights(module: nn.Module) -> None:
    # MAE initialize_weights: xavier_uniform for every Linear (the patch embedding is one here), zero bias.
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MAE(nn.Module):
    """Masked autoencoder (or, with ``objective="classify"``, its encoder with a linear head)."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        gh, gw = config.grid
        C = config.channels
        mean = torch.tensor(config.pixel_mean or [0.0] * C).view(1, C, 1, 1)
        std = torch.tensor(config.pixel_std or [1.0] * C).view(1, C, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        # A Linear on patchified pixels equals ViT's stride-p convolution, and lets us embed visible patches only.
        self.patch_embed = Linear(config.patch_dim, config.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.register_buffer("pos_embed", sincos_2d(gh, gw, config.dim), persistent=False)  # (L, D) fixed
        self.encoder = Encoder(config.encoder_config())
        if config.variant == "simmim":
            self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        if config.objective == "reconstruct":
            self.decoder_embed = Linear(config.dim, config.decoder_dim)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_dim))
            self.register_buffer("decoder_pos_embed", sincos_2d(gh, gw, config.decoder_dim), persistent=False)
            self.decoder = Encoder(config.decoder_config())
            self.decoder_pred = Linear(config.decoder_dim, config.patch_dim)
        else:
            self.head = Linear(config.dim, config.num_classes)
        self.apply(_init_weights)
        for token in (self.cls_token, getattr(self, "mask_token", None), getattr(self, "encoder_mask_token", None)):
            if token is not None:
                nn.init.normal_(token, std=0.02)
        if config.objective == "classify":
            nn.init.trunc_normal_(self.head.weight, std=2e-5)  # MAE main_finetune.py
        if config.objective == "reconstruct" and config.mask_kind == "learned":
            # Built after _init_weights: its zero-initialised head starts it as uniform random masking.
            self.adversary = AdversarialMasking(config.masker_config(), config.mask_ratio)

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> MAE:
        return cls(MAEConfig.from_config(values))

    def to_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    # ------------------------------------------------------------------------------------------ pixels
    def check_images(self, images: Tensor) -> None:
        """``ValueError`` unless ``images`` is a float ``(B, C, H, W)`` batch of this model's size."""
        cfg = self.config
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor (B, C, H, W), got {getattr(images, 'shape', images)}")
        if images.shape[1] != cfg.channels:
            raise ValueError(f"this model takes {cfg.channels}-channel images, got {images.shape[1]} channel(s)")
        if tuple(images.shape[2:]) != cfg.image_size:
            raise ValueError(f"this model takes {cfg.image_size[0]}x{cfg.image_size[1]} images, got "
                             f"{images.shape[2]}x{images.shape[3]}")  # fmt: skip

    def normalize(self, images: Tensor) -> Tensor:
        """Pixels in [0, 1] -> model space ``(x - pixel_mean) / pixel_std``; ``(B, C, H, W)``."""
        return (images - self.pixel_mean) / self.pixel_std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.pixel_std + self.pixel_mean

    def patch_targets(self, x: Tensor) -> Tensor:
        """Loss targets ``(B, L, P)`` from normalised images; per-patch standardised when ``norm_pix_loss``."""
        target = patchify(x, self.config.patch_size)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as MAE and HF do
            target = (target - mean) / (var + NORM_PIX_EPS) ** 0.5
        return target

    # ------------------------------------------------------------------------------------------ masking
    def sample_mask(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        device: torch.device | str | None = None,
        x: Tensor | None = None,
    ) -> MaskSample:
        """Draw this model's training mask: ``masked bool (B, L)``, True = hidden, plus ``ids_keep``/``ids_restore``.

        ``noise (B, L)`` (random masking only) replays MAE/HF ViTMAE exactly; otherwise draws use ``generator``
        on CPU and move to ``device``. The image-dependent kinds need the normalised images ``x (B, C, H, W)``:
        ``learned`` hides what the adversarial masker proposes (a :class:`~masklab.masks.learned.LearnedMaskSample`),
        ``attention-high``/``-low`` hide the patches the current encoder's last-layer [CLS] attention (head mean,
        all patches visible, no gradient) ranks highest / lowest (AttMask), with ``attention_noise`` to break
        near-ties. All kinds hide exactly ``L - int(L * (1 - mask_ratio))`` patches per row.
        """
        cfg = self.config
        if noise is not None and cfg.mask_kind != "random":
            raise ValueError(f"noise only applies to random masking, this model uses {cfg.mask_kind!r}")
        if cfg.mask_kind == "random":
            return random_masking(
                batch, cfg.num_patches, cfg.mask_ratio, generator=generator, noise=noise, device=device
            )
        if cfg.mask_kind == "block":
            return block_masking(batch, cfg.grid, cfg.mask_ratio, generator=generator, device=device)
        if cfg.mask_kind == "grid":
            return grid_masking(batch, cfg.grid, cfg.grid_cell, generator=generator, device=device)
        if x is None or x.shape[0] != batch:
            raise ValueError(f"mask_kind {cfg.mask_kind!r} depends on the images: pass x (B={batch}, C, H, W)")
        if cfg.mask_kind == "learned":
            if not hasattr(self, "adversary"):
                raise ValueError("this MAE has no learned masker (it is built only for objective='reconstruct')")
            return self.adversary.propose(patchify(x, cfg.patch_size), generator)
        scores = self.patch_importance(x)  # (B, L)
        mode = "high" if cfg.mask_kind == "attention-high" else "low"
        return attention_guided_masking(
            scores, cfg.mask_ratio, mode, generator=generator, noise_scale=cfg.attention_noise
        )

    @torch.no_grad()
    def patch_importance(self, x: Tensor, layer: int = -1) -> Tensor:
        """[CLS] attention to each patch ``(B, L)`` (head mean of ``layer``) with every patch visible.

        ``x``: normalised images ``(B, C, H, W)``. One reference-path forward with attention weights (the
        training forward stays on the fused kernels); rows sum to 1 with the CLS column, which is dropped.
        """
        _, weights = self.encoder(self.encoder_input(x), return_weights=True)
        return token_importance(weights, cls_index=0, layer=layer)[:, 1:].float()

    # ------------------------------------------------------------------------------------------ model
    def forward_encoder(self, x: Tensor, mask: MaskSample | None = None) -> Tensor:
        """Normalised images ``(B, C, H, W)`` -> encoder output ``(B, 1 + V, D)`` (CLS first); see
        :meth:`encoder_input`."""
        return self.encoder(self.encoder_input(x, mask))

    def encoder_input(self, x: Tensor, mask: MaskSample | None = None) -> Tensor:
        """Normalised images ``(B, C, H, W)`` -> the encoder's input tokens ``(B, 1 + V, D)`` (CLS first).

        ``mask=None`` embeds every patch (inference: deterministic). With a mask, ``variant="mae"`` drops the
        hidden patches before embedding (V = visible count, in ``ids_keep`` order); ``"simmim"`` keeps all L
        and swaps hidden ones for the encoder mask token.
        """
        patches = patchify(x, self.config.patch_size)  # (B, L, P)
        B, _, P = patches.shape
        if mask is None:
            tokens = self.patch_embed(patches) + self.pos_embed  # (B, L, D)
        elif self.config.variant == "simmim" or mask.ids_keep is None:
            if self.config.variant != "simmim":
                raise ValueError("MAE needs masks that hide the same number of patches in every row (ids_keep)")
            tokens = self.patch_embed(patches)  # (B, L, D)
            tokens = torch.where(mask.masked[..., None], self.encoder_mask_token.to(tokens.dtype), tokens)
            tokens = tokens + self.pos_embed
        else:
            ids_keep = mask.ids_keep  # (B, V)
            visible = patches.gather(1, ids_keep[..., None].expand(-1, -1, P))  # (B, V, P)
            tokens = self.patch_embed(visible) + self.pos_embed[ids_keep]  # (B, V, D)
        # The CLS position is the zero row of MAE's table, so it gets no position term.
        cls = self.cls_token.expand(B, -1, -1).to(tokens.dtype)
        return torch.cat([cls, tokens], dim=1)  # (B, 1 + V, D)

    def forward_decoder(self, latent: Tensor, mask: MaskSample) -> Tensor:
        """Encoder output ``(B, 1 + V, D)`` -> pixel predictions for every patch ``(B, L, P)``."""
        x = self.decoder_embed(latent)  # (B, 1 + V, Dd)
        B, V1, Dd = x.shape
        L = self.config.num_patches
        if V1 == L + 1:  # simmim: already one token per patch, in position order
            restored = x[:, 1:]
        else:
            fill = self.mask_token.to(x.dtype).expand(B, L + 1 - V1, Dd)  # (B, M, Dd)
            restored = torch.cat([x[:, 1:], fill], dim=1)  # (B, L, Dd) visible then hidden
            restored = restored.gather(1, mask.ids_restore[..., None].expand(-1, -1, Dd))  # position order
        x = torch.cat([x[:, :1], restored + self.decoder_pos_embed], dim=1)  # (B, 1 + L, Dd)
        return self.decoder_pred(self.decoder(x)[:, 1:])  # (B, L, P)

    def forward_loss(self, target: Tensor, pred: Tensor, masked: Tensor) -> Tensor:
        """Mean squared error over hidden patches only: ``target``/``pred (B, L, P)``, ``masked bool (B, L)``."""
        return masked_loss((pred - target) ** 2, masked)

    def forward(
        self,
        images: Tensor,
        *,
        mask: MaskSample | None = None,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MAEOutput:
        """Masked reconstruction of ``images (B, C, H, W)`` in [0, 1]: draw (or take) a mask, encode, decode."""
        if self.config.objective != "reconstruct":
            raise ValueError("this MAE was built for classification (objective='classify'); it has no decoder")
        self.check_images(images)
        x = self.normalize(images)
        if mask is None:
            mask = self.sample_mask(images.shape[0], generator=generator, noise=noise, device=images.device, x=x)
        pred = self.forward_decoder(self.forward_encoder(x, mask), mask)
        loss = self.forward_loss(self.patch_targets(x), pred, mask.masked)
        return MAEOutput(loss, pred, mask.masked, mask.ids_restore)

    def training_loss(self, batch: Any, generator: torch.Generator) -> LossOutput:
        """``fit`` hook. ``batch.images (B, C, H, W)`` in [0, 1]; ``batch.labels (B,)`` when classifying."""
        images = batch.images
        if self.config.objective == "reconstruct" and self.config.mask_kind == "learned":
            return self._adversarial_loss(images, generator)
        if self.config.objective == "reconstruct":
            return LossOutput(self(images, generator=generator).loss)
        labels = getattr(batch, "labels", None)
        if labels is None:
            raise ValueError("fine-tuning a classifier needs labelled data (class subfolders or a label array)")
        mask = None
        if self.config.mask_ratio > 0:  # token dropping as augmentation while fine-tuning
            mask = random_masking(
                images.shape[0], self.config.num_patches, self.config.mask_ratio, generator=generator,
                device=images.device,
            )  # fmt: skip
        self.check_images(images)
        logits = self.head(self.pool(self.forward_encoder(self.normalize(images), mask)))
        loss = F.cross_entropy(logits, labels)
        return LossOutput(loss, {"accuracy": (logits.argmax(-1) == labels).float().mean()})

    def _adversarial_loss(self, images: Tensor, generator: torch.Generator) -> LossOutput:
        """Min-max in one backward (gradient reversal): the MAE minimises its hidden-patch MSE on the masker's
        proposal while the masker, through the relaxed mask, maximises the same (detached) per-patch errors.

        The returned loss has the MAE loss's value; its gradient also carries the masker objective (only the
        masker's parameters reach it), so one optimizer, schedule, checkpoint and DDP all-reduce cover both.
        """
        self.check_images(images)
        x = self.normalize(images)
        patches = patchify(x, self.config.patch_size)  # (B, L, P) what the masker scores
        logits = self.adversary.masker(patches.detach())  # (B, L) one masker forward, kept for its gradient
        proposal = self.adversary.propose(patches, generator, logits=logits)
        pred = self.forward_decoder(self.forward_encoder(x, proposal), proposal)  # (B, L, P)
        per_patch = ((pred - self.patch_targets(x)) ** 2).mean(-1)  # (B, L)
        loss = masked_loss(per_patch, proposal.masked)
        objective = self.adversary.loss(patches, per_patch.detach(), proposal, logits=logits)
        hidden_ink = masked_loss((patches.amax(-1) > patches.amin(-1)).float(), proposal.masked)
        metrics = {"masker_objective": objective.detach(), "masker_nonflat_hidden": hidden_ink}
        return LossOutput(loss + (objective - objective.detach()), metrics)

    # ------------------------------------------------------------------------------------------ inference
    def pool(self, tokens: Tensor) -> Tensor:
        """Encoder output ``(B, 1 + N, D)`` -> features ``(B, D)``: mean of the N patch tokens, or the CLS token."""
        return tokens[:, 1:].mean(dim=1) if self.config.pool == "mean" else tokens[:, 0]

    def encode(self, images: Tensor) -> Tensor:
        """All patches, no masking (deterministic): ``images (B, C, H, W)`` in [0, 1] -> ``(B, 1 + L, D)``."""
        self.check_images(images)
        return self.forward_encoder(self.normalize(images))

    def features(self, images: Tensor) -> Tensor:
        """Frozen features for probing / retrieval: ``(B, D)`` (see :attr:`MAEConfig.pool`)."""
        return self.pool(self.encode(images))

    def logits(self, images: Tensor) -> Tensor:
        """Class scores ``(B, num_classes)`` of a classifier (``objective="classify"``)."""
        if self.config.objective != "classify":
            raise ValueError("this MAE has no classification head (objective='reconstruct')")
        return self.head(self.features(images))

    def pixels_from_pred(self, pred: Tensor, images: Tensor) -> Tensor:
        """Predictions ``(B, L, P)`` -> images ``(B, C, H, W)`` in [0, 1] pixel space (clamped).

        With ``norm_pix_loss`` the model predicts each patch standardised by its own mean and variance; those
        statistics are taken from ``images`` (as MAE's visualisation does), so this needs the true images.
        """
        cfg = self.config
        if cfg.norm_pix_loss:
            target = patchify(self.normalize(images), cfg.patch_size)  # (B, L, P)
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + NORM_PIX_EPS) ** 0.5
            pred = pred * std + mean
        out = unpatchify(pred, cfg.patch_size, cfg.grid, cfg.channels)
        return self.denormalize(out).clamp(0.0, 1.0)

    def reconstruct(self, images: Tensor, masked: Tensor) -> Tensor:
        """Fill the hidden patches of ``images (B, C, H, W)`` given ``masked bool (B, L)`` (True = hidden).

        Every row must hide the same number of patches. Returns the raw reconstruction ``(B, C, H, W)`` in
        [0, 1] for every patch (visible ones included; paste them back for a composite).
        """
        self.check_images(images)
        mask = MaskSample(masked, *ids_from_masked(masked))
        x = self.normalize(images)
        pred = self.forward_decoder(self.forward_encoder(x, mask), mask)
        return self.pixels_from_pred(pred, images)
