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

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput, preset_config
from masklab.masks.attention_guided import token_importance
from masklab.masks.generators import MaskSample, ids_from_masked, random_masking
from masklab.masks.ops import loss_on_masked
from masklab.masks.strategies import MaskRequest, resolve
from masklab.models.mae.config import PRESETS, MAEConfig
from masklab.models.mae.masker import AdversarialMasking
from masklab.models.mae.norm_pix import NORM_PIX_EPS, norm_pix_stats
from masklab.nn.blocks import Encoder
from masklab.nn.pos_embed import sincos_2d
from masklab.tokenizers.patches import patchify, unpatchify


@dataclass
class MAEOutput:
    """One masked forward pass: ``loss`` scalar, ``pred (B, L, P)`` (model space, per-patch normalised when
    ``norm_pix_loss``), ``masked bool (B, L)`` True = hidden, ``ids_restore long (B, L)`` (None for a ``simmim``
    mask whose rows hide different counts)."""

    loss: Tensor
    pred: Tensor
    masked: Tensor
    ids_restore: Tensor | None


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

    kind: ClassVar[str] = "mae"
    # Buffers (register_buffer, not saved): declared so they type as tensors, not nn.Module.__getattr__'s union.
    pixel_mean: Tensor  # (1, C, 1, 1)
    pixel_std: Tensor  # (1, C, 1, 1)
    pos_embed: Tensor  # (L, D) fixed 2-D sin-cos
    decoder_pos_embed: Tensor  # (L, Dd); reconstruct only

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        self.mask_strategy = resolve(config.mask_kind)  # masklab.masks.strategies
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
    def from_config(cls, config: MAEConfig | dict[str, Any]) -> MAE:
        """An untrained MAE from a config or its dict (``config.json["model"]``)."""
        return cls(MAEConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MAE:
        """An untrained MAE of preset ``name`` (:data:`~masklab.models.mae.config.PRESETS`) with ``overrides``."""
        return cls(preset_config(MAEConfig, PRESETS, name, **overrides))

    # ------------------------------------------------------------------------------------------ pixels
    def check_images(self, images: Tensor) -> None:
        """``ValueError`` unless ``images`` is a float ``(B, C, H, W)`` batch of this model's size (float64 only
        for a float64 model: nothing casts it down, bf16 / fp16 images promote to the weights' dtype)."""
        cfg = self.config
        if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor (B, C, H, W), got {getattr(images, 'shape', images)}")
        if images.dtype == torch.float64 and self.cls_token.dtype != torch.float64:
            raise ValueError(f"images are torch.float64 but this model's weights are {self.cls_token.dtype}: pass "
                             f"images.float() (or images.to({self.cls_token.dtype}))")  # fmt: skip
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

        The kind resolves through :mod:`masklab.masks.strategies`. ``noise (B, L)`` (random masking only) replays
        MAE/HF ViTMAE exactly; otherwise draws use ``generator`` on CPU and move to ``device``. The
        image-dependent kinds need the normalised images ``x (B, C, H, W)``:
        ``learned`` hides what the adversarial masker proposes (a :class:`~masklab.masks.learned.LearnedMaskSample`),
        ``attention-high``/``-low`` hide the patches the current encoder's last-layer [CLS] attention (head mean,
        all patches visible, no gradient) ranks highest / lowest (AttMask), with ``attention_noise`` to break
        near-ties. All kinds hide exactly ``L - int(L * (1 - mask_ratio))`` patches per row.
        """
        cfg = self.config
        if noise is not None and cfg.mask_kind != "random":
            raise ValueError(f"noise only applies to random masking, this model uses {cfg.mask_kind!r}")
        scores = None
        if "scores" in self.mask_strategy.needs:
            if x is None or x.shape[0] != batch:
                raise ValueError(f"mask_kind {cfg.mask_kind!r} depends on the images: pass x (B={batch}, C, H, W)")
            scores = self.mask_scores(x)  # (B, L)
        request = MaskRequest(
            batch, cfg.num_patches, cfg.mask_ratio, grid=cfg.grid, scores=scores, noise=noise, device=device,
            options={"noise_scale": cfg.attention_noise, "temperature": self._masker_temperature()},
        )  # fmt: skip
        return self.mask_strategy.draw(request, generator)

    def _masker_temperature(self) -> float:
        return self.adversary.config.temperature if hasattr(self, "adversary") else 1.0

    def mask_scores(self, x: Tensor) -> Tensor:
        """What a score-driven mask kind ranks, ``(B, L)`` from normalised images ``x (B, C, H, W)``: the learned
        masker's logits (``learned``) or the encoder's [CLS] attention (``attention-high``/``-low``)."""
        if self.config.mask_kind == "learned":
            if not hasattr(self, "adversary"):
                raise ValueError("this MAE has no learned masker (it is built only for objective='reconstruct')")
            with torch.no_grad():
                return self.adversary.masker(patchify(x, self.config.patch_size))  # (B, L)
        return self.patch_importance(x)

    @torch.no_grad()
    def patch_importance(self, x: Tensor, layer: int = -1) -> Tensor:
        """[CLS] attention to each patch ``(B, L)`` (head mean of ``layer``) with every patch visible.

        ``x``: normalised images ``(B, C, H, W)``. One reference-path forward with attention weights (the
        training forward stays on the fused kernels); rows sum to 1 with the CLS column, which is dropped. The
        encoder runs in eval mode (no dropout, no drop-path) also during training, so a mask drawn from these
        scores is the encoder's and is replayed by its seed.
        """
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            _, weights = self.encoder(self.encoder_input(x), return_weights=True)
        finally:
            self.encoder.train(was_training)
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
        B, L, P = patches.shape
        if mask is not None and (mask.masked.dtype != torch.bool or tuple(mask.masked.shape) != (B, L)):
            raise ValueError(f"masked must be a bool tensor (B, L) = ({B}, {L}) for this model's "
                             f"{'x'.join(map(str, self.config.grid))} patch grid, got {mask.masked.dtype} "
                             f"{tuple(mask.masked.shape)}")  # fmt: skip
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
            assert mask.ids_restore is not None  # encoder_input refused a mask without ids_keep / ids_restore
            fill = self.mask_token.to(x.dtype).expand(B, L + 1 - V1, Dd)  # (B, M, Dd)
            restored = torch.cat([x[:, 1:], fill], dim=1)  # (B, L, Dd) visible then hidden
            restored = restored.gather(1, mask.ids_restore[..., None].expand(-1, -1, Dd))  # position order
        x = torch.cat([x[:, :1], restored + self.decoder_pos_embed], dim=1)  # (B, 1 + L, Dd)
        return self.decoder_pred(self.decoder(x)[:, 1:])  # (B, L, P)

    def forward_loss(self, target: Tensor, pred: Tensor, masked: Tensor) -> Tensor:
        """Mean squared error over hidden patches only: ``target``/``pred (B, L, P)``, ``masked bool (B, L)``."""
        return loss_on_masked((pred - target) ** 2, masked)

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

    def draw(self, batch: Any, generator: torch.Generator) -> MaskSample | None:
        """This step's random draws, made eagerly on the host: the training mask (``None`` for a classifier that
        drops no tokens). ``batch.images (B, C, H, W)`` in [0, 1]."""
        images = batch.images
        self.check_images(images)
        if self.config.objective == "reconstruct":
            x = self.normalize(images)
            return self.sample_mask(images.shape[0], generator=generator, device=images.device, x=x)
        if self.config.mask_ratio > 0:  # token dropping as augmentation while fine-tuning
            return random_masking(
                images.shape[0], self.config.num_patches, self.config.mask_ratio, generator=generator,
                device=images.device,
            )  # fmt: skip
        return None

    def training_loss(self, batch: Any, generator: torch.Generator, *, drawn: MaskSample | None = None) -> LossOutput:
        """``fit`` hook. ``batch.images (B, C, H, W)`` in [0, 1]; ``batch.labels (B,)`` when classifying.

        ``drawn``: this step's :meth:`draw`, if made outside (``torch.compile`` cannot trace a
        ``torch.Generator``, so a compiled step takes its draws as an argument); drawn here otherwise.
        """
        images = batch.images
        if self.config.objective == "reconstruct" and self.config.mask_kind == "learned":
            return self._adversarial_loss(images, generator, drawn)
        if drawn is None and (self.config.objective == "reconstruct" or self.config.mask_ratio > 0):
            drawn = self.draw(batch, generator)
        self.check_images(images)
        x = self.normalize(images)
        if self.config.objective == "reconstruct":
            assert drawn is not None
            pred = self.forward_decoder(self.forward_encoder(x, drawn), drawn)
            return LossOutput(self.forward_loss(self.patch_targets(x), pred, drawn.masked))
        labels = getattr(batch, "labels", None)
        if labels is None:
            raise ValueError("fine-tuning a classifier needs labelled data (class subfolders or a label array)")
        logits = self.head(self.pool(self.forward_encoder(x, drawn)))
        loss = F.cross_entropy(logits, labels)
        return LossOutput(loss, {"accuracy": (logits.argmax(-1) == labels).float().mean()})

    def _adversarial_loss(self, images: Tensor, generator: torch.Generator, proposal: Any = None) -> LossOutput:
        """Min-max in one backward (gradient reversal): the MAE minimises its hidden-patch MSE on the masker's
        proposal while the masker, through the relaxed mask, maximises the same (detached) per-patch errors.

        The returned loss has the MAE loss's value; its gradient also carries the masker objective (only the
        masker's parameters reach it), so one optimizer, schedule, checkpoint and DDP all-reduce cover both.
        """
        self.check_images(images)
        x = self.normalize(images)
        patches = patchify(x, self.config.patch_size)  # (B, L, P) what the masker scores
        logits = self.adversary.masker(patches.detach())  # (B, L) one masker forward, kept for its gradient
        if proposal is None:
            proposal = self.adversary.propose(patches, generator, logits=logits)
        pred = self.forward_decoder(self.forward_encoder(x, proposal), proposal)  # (B, L, P)
        per_patch = ((pred - self.patch_targets(x)) ** 2).mean(-1)  # (B, L)
        loss = loss_on_masked(per_patch, proposal.masked)
        objective = self.adversary.loss(patches, per_patch.detach(), proposal, logits=logits)
        hidden_ink = loss_on_masked((patches.amax(-1) > patches.amin(-1)).float(), proposal.masked)
        metrics: dict[str, float | Tensor] = {
            "masker_objective": objective.detach(),
            "masker_nonflat_hidden": hidden_ink,
        }
        return LossOutput(loss + (objective - objective.detach()), metrics)

    # ------------------------------------------------------------------------------------------ inference
    def pool(self, tokens: Tensor) -> Tensor:
        """Encoder output ``(B, 1 + N, D)`` -> features ``(B, D)``: mean of the N patch tokens, or the CLS token."""
        return tokens[:, 1:].mean(dim=1) if self.config.pool == "mean" else tokens[:, 0]

    def encode(self, images: Tensor) -> Tensor:
        """All patches, no masking (deterministic): ``images (B, C, H, W)`` in [0, 1] -> ``(B, 1 + L, D)``."""
        self.check_images(images)
        return self.forward_encoder(self.normalize(images))

    def embed(self, images: Tensor) -> Tensor:
        """Frozen features for probing / retrieval: ``(B, D)`` (see :attr:`MAEConfig.pool`), all patches visible."""
        return self.pool(self.encode(images))

    def logits(self, images: Tensor) -> Tensor:
        """Class scores ``(B, num_classes)`` of a classifier (``objective="classify"``)."""
        if self.config.objective != "classify":
            raise ValueError("this MAE has no classification head (objective='reconstruct')")
        return self.head(self.embed(images))

    def pixels_from_pred(self, pred: Tensor, images: Tensor, masked: Tensor | None = None) -> Tensor:
        """Predictions ``(B, L, P)`` -> images ``(B, C, H, W)`` in [0, 1] pixel space (clamped).

        With ``norm_pix_loss`` the model predicts each patch standardised by its own mean and variance. A visible
        patch gets its own back from ``images``; with ``masked (B, L)`` (True = hidden) a hidden patch gets the
        average of its image's visible patches (nothing read from its pixels), without it its own (MAE's
        visualisation, which shows what the hidden pixels' statistics are)."""
        cfg = self.config
        if cfg.norm_pix_loss:
            mean, std = norm_pix_stats(patchify(self.normalize(images), cfg.patch_size), masked)  # (B, L, 1) each
            pred = pred * std + mean
        out = unpatchify(pred, cfg.patch_size, cfg.grid, cfg.channels)
        return self.denormalize(out).clamp(0.0, 1.0)

    def reconstruct(self, images: Tensor, masked: Tensor) -> Tensor:
        """Fill the hidden patches of ``images (B, C, H, W)`` given ``masked bool (B, L)`` (True = hidden).

        Every row must hide the same number of patches. Returns the raw reconstruction ``(B, C, H, W)`` in
        [0, 1] for every patch (visible ones included; paste them back for a composite); with ``norm_pix_loss``
        hidden patches take their image's visible patches' statistics (:meth:`pixels_from_pred`).
        """
        self.check_images(images)
        mask = MaskSample(masked, *ids_from_masked(masked))
        x = self.normalize(images)
        pred = self.forward_decoder(self.forward_encoder(x, mask), mask)
        return self.pixels_from_pred(pred, images, masked)
