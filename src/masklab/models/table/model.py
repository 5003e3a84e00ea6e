"""TableMAE: a masked autoencoder over table cells that respects real missingness (ReMasker, Du et al. 2023).

The algorithm as code::

    tokenize (one token per column) -> hide cells (missing ones + a random share of the observed ones)
    -> encoder over the visible cells only -> decoder over all columns (mask tokens at hidden cells)
    -> predict every hidden cell; the loss counts only the *observed* cells we hid (MSE numeric, CE categorical)

With ``numeric_loss="gaussian_nll"`` each numeric cell also gets a predicted log-variance (a heteroscedastic
head): the cell's error is then its Gaussian negative log-likelihood ``0.5 * (log 2pi + log_var +
(x - mu)^2 / exp(log_var))`` (nats, standardised units), so a cell the model predicts confidently costs
more when it is wrong. Training weights each numeric cell's NLL by ``stop_grad(var) ** nll_beta``
(beta-NLL, Seitzer et al. 2022; beta = 0.5 by default), which keeps the mean fit from stalling on cells the
model has declared noisy; :meth:`TableMAE.cell_errors` (anomaly scores, held-out checks) is the plain NLL.

ReMasker's point (Sec. 3): real missing values are hidden exactly like the artificially masked ones, so the
model trains on what it will face at imputation time, where the missing cells are the hidden ones. The
artificial mask hides a share of each row's observed cells (never a missing one, so a missing cell is
never "re-masked" nor scored): ``mask_ratio`` exactly as ReMasker with ``mask_ratio_jitter=0``, else a
share drawn per row from ``mask_ratio ± mask_ratio_jitter``. The jitter is ours: on validation cells a
fixed 0.25 suited 30 columns (breast cancer) but overfitted 4 (iris) and 10 (diabetes), a fixed 0.5 the
reverse; U(0.25, 0.75) was best or second best on each.

Drop mode with a variable count per row: rows have different numbers of observed cells, so MAE's equal-count
``ids_keep`` cannot hold them. Visible cells are packed to the front of a ``(B, V, D)`` batch with
``V = max visible per row`` and the rest marked ``padding`` for :class:`masklab.nn.Encoder`. (The equal-count
alternative would have to reveal missing cells or hide extra observed ones, changing what the model sees.)

Shape legend: ``B`` rows, ``C`` columns (tokens), ``V`` visible slots, ``D`` encoder / ``Dd`` decoder width,
``K`` inference masks. Polarity: ``missing``/``masked``/``hidden: bool (B, C)`` True = no observed value /
artificially hidden / hidden from the encoder; ``padding: bool (B, V)`` True = padded slot.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masklab.core.contract import LossOutput
from masklab.masks import masked_loss, random_masking
from masklab.nn import Encoder, TransformerConfig
from masklab.nn.cpu_linear import Linear
from masklab.tokenizers.table import CellTokenizer, TableSchema

_INFERENCE_ROWS = 4096  # rows per forward pass at inference
NUMERIC_LOSSES = ("mse", "gaussian_nll")
LOG_VAR_RANGE = (-10.0, 10.0)  # predicted log-variances are clamped to this (standardised units)
_LOG_2PI = math.log(2 * math.pi)

# Tuned on validation cells of the training tables (bench/imputation.py --validation): width helps, depth
# does not (4 encoder blocks trained slower and imputed worse than 2 at the same budget).
PRESETS: dict[str, dict] = {
    "table-tiny": dict(dim=32, depth=2, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2),
    "table-small": dict(dim=64, depth=2, heads=4, decoder_dim=64, decoder_depth=1, decoder_heads=4),
}


@dataclass(frozen=True)
class TableMAEConfig:
    """Shape of a :class:`TableMAE`; the schema (column names, kinds, statistics) travels with it so a saved
    run can encode new data exactly as in training."""

    schema: TableSchema
    dim: int = 64
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    mask_ratio: float = 0.5  # share of each row's observed cells hidden in training (ReMasker's default)
    mask_ratio_jitter: float = 0.25  # per-row share ~ U(mask_ratio - jitter, mask_ratio + jitter)
    numeric_loss: str = "mse"  # "mse" | "gaussian_nll" (adds a log-variance head for numeric cells)
    nll_beta: float = 0.5  # beta-NLL exponent of the training weight stop_grad(var) ** beta ("gaussian_nll")
    trim_fraction: float = 0.0  # share of each batch's rows (highest masked loss) left out of the loss

    def __post_init__(self) -> None:
        if self.numeric_loss not in NUMERIC_LOSSES:
            raise ValueError(f"numeric_loss must be one of {NUMERIC_LOSSES}, got {self.numeric_loss!r}")
        if not 0.0 <= self.nll_beta <= 1.0:
            raise ValueError(f"nll_beta must be in [0, 1], got {self.nll_beta}")
        if not 0.0 <= self.trim_fraction < 1.0:
            raise ValueError(f"trim_fraction must be in [0, 1), got {self.trim_fraction}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        low, high = self.mask_ratio - self.mask_ratio_jitter, self.mask_ratio + self.mask_ratio_jitter
        if self.mask_ratio_jitter < 0 or low < 0 or high > 1:
            raise ValueError(
                f"mask_ratio ± mask_ratio_jitter must stay within [0, 1], "
                f"got {self.mask_ratio} ± {self.mask_ratio_jitter}"
            )

    @classmethod
    def preset(cls, name: str, schema: TableSchema, **overrides) -> TableMAEConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown table preset {name!r}; known: {', '.join(PRESETS)}")
        return cls(schema=schema, **{**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        return {**asdict(self), "schema": self.schema.to_dict()}

    @classmethod
    def from_config(cls, config: dict) -> TableMAEConfig:
        config = {k: v for k, v in config.items() if k != "kind"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown TableMAE config keys {unknown}; known: {sorted(known)}")
        return cls(**{**config, "schema": TableSchema.from_config(config["schema"])})


@dataclass(frozen=True)
class VisibleLayout:
    """Where the visible cells of each row sit in the encoder's packed batch (MAE's index bookkeeping).

    ids_keep: long (B, V) column of each packed slot; padding: bool (B, V) True = padded slot;
    ids_restore: long (B, C) gathering ``cat(visible, hidden)`` with it gives column order.
    """

    ids_keep: Tensor
    padding: Tensor
    ids_restore: Tensor


def visible_layout(hidden: Tensor) -> VisibleLayout:
    """Pack visible cells (``hidden`` False) to the front, in column order; ``V = max(1, max visible)``."""
    ids_shuffle = torch.sort(hidden.to(torch.uint8), dim=1, stable=True).indices  # (B, C) visible first
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, C)
    n_visible = (~hidden).sum(dim=1)  # (B,)
    width = max(1, int(n_visible.max()))
    slots = torch.arange(width, device=hidden.device)
    return VisibleLayout(ids_shuffle[:, :width], slots[None, :] >= n_visible[:, None], ids_restore)


@dataclass(frozen=True)
class TablePrediction:
    """numeric: float (B, C) standardised predictions (meaningful in numeric columns);
    logits: one float (B, K_c) per categorical column, keyed by column index;
    log_var: float (B, C) predicted log-variances of the numeric cells (clamped to :data:`LOG_VAR_RANGE`),
    only with ``numeric_loss="gaussian_nll"``, else None."""

    numeric: Tensor
    logits: dict[int, Tensor]
    log_var: Tensor | None = None


class TableMAE(nn.Module):
    """Cell tokenizer -> encoder over visible cells (drop mode, padded) -> decoder over all columns -> a
    per-column head (a scalar for numeric columns, logits for categorical ones). See the module doc."""

    kind = "table"

    def __init__(self, config: TableMAEConfig) -> None:
        super().__init__()
        self.config = config
        cards = config.schema.cardinalities
        n_columns = len(cards)
        self.tokenizer = CellTokenizer(cards, config.dim)
        enc = TransformerConfig(config.dim, config.depth, config.heads, config.mlp_ratio, dropout=config.dropout)
        self.encoder = Encoder(enc)
        dec = TransformerConfig(
            config.decoder_dim, config.decoder_depth, config.decoder_heads, config.mlp_ratio, dropout=config.dropout
        )
        self.decoder_embed = Linear(config.dim, config.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(config.decoder_dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(n_columns, config.decoder_dim) * config.decoder_dim**-0.5)
        self.decoder = Encoder(dec)
        # Per-column heads: a scalar for a numeric column, K_c logits (one slice of a shared layer) otherwise.
        self.numeric_head_weight = nn.Parameter(torch.zeros(n_columns, config.decoder_dim))
        self.numeric_head_bias = nn.Parameter(torch.zeros(n_columns))
        # Only with the Gaussian NLL (so mse models keep their state dict): log-variance per numeric cell,
        # starting at 0 (unit variance, the standardised columns' own).
        if config.numeric_loss == "gaussian_nll":
            self.numeric_logvar_weight = nn.Parameter(torch.zeros(n_columns, config.decoder_dim))
            self.numeric_logvar_bias = nn.Parameter(torch.zeros(n_columns))
        # Only when there are categorical columns: an unused head would stall DDP (no gradient to reduce).
        self.categorical_head = Linear(config.decoder_dim, sum(cards)) if any(cards) else None
        starts = torch.cumsum(torch.tensor([0, *cards]), 0).tolist()
        self.category_slices = {j: (starts[j], starts[j] + k) for j, k in enumerate(cards) if k > 0}

    @classmethod
    def from_config(cls, config: dict) -> TableMAE:
        return cls(TableMAEConfig.from_config(config))

    def model_config(self) -> dict:
        """What :func:`masklab.train.fit` stores as ``config.json["model"]``."""
        return {"kind": self.kind, **self.config.to_dict()}

    # ---------------------------------------------------------------------------------------- masking
    def mask_observed(self, missing: Tensor, generator: torch.Generator) -> Tensor:
        """The training mask ``masked (B, C)``: a share of each row's *observed* cells (see the module doc).

        Noise is drawn on CPU from ``generator``; missing cells are never picked.
        """
        ratio, jitter = self.config.mask_ratio, self.config.mask_ratio_jitter
        if jitter == 0:  # ReMasker: missing cells are the generator's padding, so they are never hidden
            sample = random_masking(*missing.shape, ratio, generator=generator, padding=missing.cpu())
            return sample.masked.to(missing.device)
        rows, columns = missing.shape
        share = ratio - jitter + 2 * jitter * torch.rand(rows, 1, generator=generator)  # (B, 1)
        noise = torch.rand(rows, columns, generator=generator).masked_fill(missing.cpu(), 2.0)  # missing last
        rank = noise.argsort(dim=1).argsort(dim=1)  # (B, C) observed cells take ranks 0 .. n_obs - 1
        n_observed = (~missing.cpu()).sum(dim=1, keepdim=True)  # (B, 1)
        count = torch.round(share * n_observed).long().clamp(min=(n_observed > 0).long())  # >= 1 when possible
        return (rank < count).to(missing.device)

    # -------------------------------------------------------------------------------------- the model
    def forward_encoder(self, values: Tensor, categories: Tensor, hidden: Tensor) -> tuple[Tensor, VisibleLayout]:
        """Encode the visible cells only -> ``latent (B, V, D)`` and the packing layout."""
        tokens = self.tokenizer(values, categories)  # (B, C, D)
        layout = visible_layout(hidden)
        index = layout.ids_keep[..., None].expand(-1, -1, tokens.shape[-1])  # (B, V, D)
        visible = torch.gather(tokens, 1, index)  # (B, V, D)
        return self.encoder(visible, padding=layout.padding), layout

    def forward_decoder(self, latent: Tensor, layout: VisibleLayout) -> Tensor:
        """Re-insert mask tokens at hidden cells, decode all columns -> ``(B, C, Dd)``."""
        x = self.decoder_embed(latent)  # (B, V, Dd)
        batch, n_columns = layout.ids_restore.shape
        width = x.shape[1]
        if width < n_columns:
            x = torch.cat([x, x.new_zeros(batch, n_columns - width, x.shape[-1])], dim=1)  # (B, C, Dd)
        # Slot s (in visible-first order) is a real visible cell iff s < its row's visible count.
        n_visible = (~layout.padding).sum(dim=1)  # (B,)
        is_visible = torch.arange(n_columns, device=x.device)[None, :] < n_visible[:, None]  # (B, C)
        x = torch.where(is_visible[..., None], x, self.mask_token)  # (B, C, Dd) shuffled order
        x = torch.gather(x, 1, layout.ids_restore[..., None].expand(-1, -1, x.shape[-1]))  # (B, C, Dd)
        return self.decoder(x + self.decoder_pos_embed)

    def heads(self, h: Tensor) -> TablePrediction:
        numeric = (h * self.numeric_head_weight).sum(-1) + self.numeric_head_bias  # (B, C)
        logits_all = self.categorical_head(h) if self.category_slices else None  # (B, C, sum K)
        logits = {j: logits_all[:, j, lo:hi] for j, (lo, hi) in self.category_slices.items()}  # (B, K_c) each
        log_var = None
        if self.config.numeric_loss == "gaussian_nll":
            log_var = (h * self.numeric_logvar_weight).sum(-1) + self.numeric_logvar_bias  # (B, C)
            log_var = log_var.clamp(*LOG_VAR_RANGE)
        return TablePrediction(numeric, logits, log_var)

    def forward(self, values: Tensor, categories: Tensor, hidden: Tensor) -> TablePrediction:
        """Predict every cell from the visible ones (``hidden`` False). values float (B, C), categories
        long (B, C) as encoded by :func:`masklab.tokenizers.table.encode_frame`."""
        latent, layout = self.forward_encoder(values, categories, hidden)
        return self.heads(self.forward_decoder(latent, layout))

    def cell_errors(self, pred: TablePrediction, values: Tensor, categories: Tensor) -> Tensor:
        """Per-cell loss ``(B, C)``, cross-entropy (nats) for categories; for numeric cells the squared error
        in standardised units, or with ``numeric_loss="gaussian_nll"`` the Gaussian negative log-likelihood
        ``0.5 * (log 2pi + log_var + (x - mu)^2 / exp(log_var))`` (nats, float32 at least)."""
        if pred.log_var is None:
            errors = (pred.numeric - values) ** 2  # (B, C)
        else:
            log_var = pred.log_var.float()
            squared = (pred.numeric.float() - values.float()) ** 2
            errors = 0.5 * (_LOG_2PI + log_var + squared * torch.exp(-log_var))  # (B, C)
        for j, logits in pred.logits.items():
            errors[:, j] = F.cross_entropy(logits.float(), categories[:, j], reduction="none")
        return errors

    def training_loss(self, batch: dict, generator: torch.Generator) -> LossOutput:
        """``batch``: values, categories, missing (see :class:`~masklab.tokenizers.table.EncodedTable`)."""
        missing = batch["missing"]
        masked = self.mask_observed(missing, generator)  # (B, C) observed cells we hide
        pred = self(batch["values"], batch["categories"], missing | masked)
        errors = self.cell_errors(pred, batch["values"], batch["categories"])
        metrics = {"masked_cells": masked.float().sum(1).mean()}
        if self.config.trim_fraction > 0:
            masked = self._trim_rows(errors.detach(), masked)
        if pred.log_var is not None:
            metrics["cell_nll"] = masked_loss(errors.detach(), masked)
            if self.config.nll_beta > 0:  # beta-NLL: weight numeric cells by stop_grad(var) ** beta
                weight = torch.exp(self.config.nll_beta * pred.log_var.detach().float())  # (B, C)
                for j in self.category_slices:
                    weight[:, j] = 1.0
                errors = errors * weight
        return LossOutput(masked_loss(errors, masked), metrics)

    def _trim_rows(self, errors: Tensor, masked: Tensor) -> Tensor:
        """Trimmed loss (robust statistics' least trimmed squares, as in robust autoencoders for anomaly
        detection): the ``trim_fraction`` share of rows with the highest mean hidden-cell loss is dropped from
        this step's loss, so a model trained on contaminated data is not taught to reconstruct its rarest rows.
        ``errors (B, C)``, ``masked bool (B, C)`` -> ``masked`` with the dropped rows all False."""
        rows = masked.shape[0]
        keep = max(1, math.ceil((1.0 - self.config.trim_fraction) * rows))
        if keep >= rows:
            return masked
        row_loss = torch.where(masked, errors, 0.0).sum(1) / masked.sum(1).clamp_min(1)  # (B,)
        kept = torch.zeros(rows, dtype=torch.bool, device=masked.device)
        kept[row_loss.topk(keep, largest=False).indices] = True
        return masked & kept[:, None]


# ------------------------------------------------------------------------------- inference (no gradients)
def column_patterns(n_columns: int, rounds: int, ratio: float, seed: int) -> Tensor:
    """Fixed inference masks ``bool (K, C)``, True = hidden: ``rounds`` random permutations of the columns,
    each cut into groups of ``max(1, round(ratio * C))``; so every column is hidden exactly ``rounds`` times
    (once, in a single all-hidden pattern, when the group is the whole row)."""
    group = max(1, round(ratio * n_columns))
    if group >= n_columns:  # every round would be the same all-hidden pattern
        return torch.ones(1, n_columns, dtype=torch.bool)
    generator = torch.Generator().manual_seed(seed)
    patterns = []
    for _ in range(rounds):
        order = torch.randperm(n_columns, generator=generator)
        for start in range(0, n_columns, group):
            pattern = torch.zeros(n_columns, dtype=torch.bool)
            pattern[order[start : start + group]] = True
            patterns.append(pattern)
    return torch.stack(patterns) if patterns else torch.zeros(0, n_columns, dtype=torch.bool)


def _chunks(n: int):
    for start in range(0, n, _INFERENCE_ROWS):
        yield slice(start, min(n, start + _INFERENCE_ROWS))


@torch.no_grad()
def impute_cells(
    model: TableMAE, values: Tensor, categories: Tensor, missing: Tensor, patterns: Tensor
) -> tuple[Tensor, Tensor]:
    """Predictions for every cell from its row's observed cells: ``numeric (N, C)`` standardised and
    ``categories (N, C)`` argmax indices. Averaged over the plain prediction and one per extra pattern
    ``(K, C)`` that also hides a group of observed cells (a pattern that would hide a row's last observed
    cell is skipped for that row); categorical columns average probabilities."""
    device = next(model.parameters()).device
    numeric_out = torch.zeros(values.shape, dtype=torch.float64)
    category_out = torch.zeros(values.shape, dtype=torch.long)
    for rows in _chunks(len(values)):
        v, c, m = values[rows].to(device), categories[rows].to(device), missing[rows].to(device)
        numeric = torch.zeros(v.shape, dtype=torch.float64, device=device)
        probs = {j: 0.0 for j in model.category_slices}
        hiddens = [m] + [m | p.to(device) for p in patterns]
        for hidden in hiddens:
            lost_all = hidden.all(1, keepdim=True) & ~m.all(1, keepdim=True)  # (B, 1) pattern hid the last cell
            hidden = torch.where(lost_all, m, hidden)
            pred = model(v, c, hidden)
            numeric += pred.numeric.double()
            for j, logits in pred.logits.items():
                probs[j] = probs[j] + logits.float().softmax(-1)
        numeric_out[rows] = (numeric / len(hiddens)).cpu()
        for j, p in probs.items():
            category_out[rows, j] = p.argmax(-1).cpu()
    return numeric_out, category_out


@torch.no_grad()
def reconstruction_errors(
    model: TableMAE, values: Tensor, categories: Tensor, missing: Tensor, patterns: Tensor
) -> Tensor:
    """Per-cell reconstruction error ``(N, C)`` float64: each observed cell's error
    (:meth:`TableMAE.cell_errors`: squared error in standardised units or, with ``numeric_loss="gaussian_nll"``,
    Gaussian NLL; cross-entropy for categories) averaged over the patterns ``(K, C)`` that hid it; NaN for a
    cell that is missing or that no pattern hid."""
    device = next(model.parameters()).device
    out = torch.full(values.shape, math.nan, dtype=torch.float64)
    for rows in _chunks(len(values)):
        v, c, m = values[rows].to(device), categories[rows].to(device), missing[rows].to(device)
        total = torch.zeros(v.shape, dtype=torch.float64, device=device)
        count = torch.zeros(v.shape, dtype=torch.float64, device=device)
        for pattern in patterns.to(device):
            scored = pattern & ~m  # (B, C) observed cells this pattern hides
            errors = model.cell_errors(model(v, c, m | pattern), v, c).double()
            total += torch.where(scored, errors, 0.0)
            count += scored.double()
        out[rows] = torch.where(count > 0, total / count.clamp_min(1), math.nan).cpu()
    return out
