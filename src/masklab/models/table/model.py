"""TableMAE: a masked autoencoder over table cells that respects real missingness (ReMasker, Du et al. 2023).

The algorithm as code::

    tokenize (one token per column) -> hide cells (missing ones + a random share of the observed ones)
    -> encoder over the visible cells only -> decoder over all columns (mask tokens at hidden cells)
    -> predict every hidden cell; the loss counts only the *observed* cells we hid (MSE numeric, CE categorical)

ReMasker's point (Sec. 3): real missing values are hidden exactly like the artificially masked ones, so the
model trains on what it will face at imputation time, where the missing cells are the hidden ones. The
artificial mask hides a share of each row's observed cells (never a missing one, so a missing cell is
never "re-masked" nor scored): with ``mask_ratio_jitter=0``, ``n_obs - int(n_obs * (1 - mask_ratio))`` of
the row's ``n_obs`` observed cells (the registry's ``random`` strategy, missing cells protected), the missing
cells hidden on top; else a share drawn per row from ``mask_ratio ± mask_ratio_jitter``. This is not
ReMasker's count: ReMasker keeps ``int(C * (1 - mask_ratio))`` of all ``C`` columns and hides the rest,
missing cells first (their noise is 1), so the missing cells use up part of the ratio and it hides
``C - int(C * (1 - mask_ratio)) - n_missing`` observed cells (none once a row misses that many). Rows with
missing cells hide more here: 10 columns, 2 missing, ratio 0.5 -> 4 observed + 2 missing hidden here, 3 + 2
in ReMasker; rows with none hide the same count. The jitter is ours: on validation cells a
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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import Linear  # plain; masklab.nn.cpu_linear.use_cpu_linear may swap in its oneDNN class

from masklab.core.contract import LossOutput, ModelConfig, preset_config
from masklab.masks.convert import padding_to_blocked
from masklab.masks.ops import loss_on_masked, visible_mean
from masklab.masks.strategies import MaskRequest, resolve
from masklab.nn import Encoder, TransformerConfig
from masklab.tokenizers.table import CellTokenizer, TableSchema

_INFERENCE_ROWS = 4096  # rows per forward pass at inference
_REMOVED_OPTIONS = {"numeric_loss": "mse", "nll_beta": 0.5, "trim_fraction": 0.0}  # key -> the default it had

# Tuned on validation cells of the training tables (bench/imputation.py --validation): width helps, depth
# does not (4 encoder blocks trained slower and imputed worse than 2 at the same budget).
PRESETS: dict[str, dict] = {
    "table-tiny": dict(dim=32, depth=2, heads=2, decoder_dim=32, decoder_depth=1, decoder_heads=2),
    "table-small": dict(dim=64, depth=2, heads=4, decoder_dim=64, decoder_depth=1, decoder_heads=4),
}


@dataclass(frozen=True)
class TableMAEConfig(ModelConfig):
    """Shape of a :class:`TableMAE`; the schema (column names, kinds, statistics) travels with it so a saved
    run can encode new data exactly as in training."""

    mlp_widths: ClassVar[Mapping[str, str]] = {"mlp_hidden": "dim", "decoder_mlp_hidden": "decoder_dim"}

    schema: TableSchema
    dim: int = 64
    depth: int = 4
    heads: int = 4
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mlp_hidden: int | None = None  # encoder MLP hidden width; None = 4 * dim
    decoder_mlp_hidden: int | None = None  # decoder MLP hidden width; None = 4 * decoder_dim
    dropout: float = 0.0
    mask_ratio: float = 0.5  # share of each row's observed cells hidden in training (ReMasker's default)
    mask_ratio_jitter: float = 0.25  # per-row share ~ U(mask_ratio - jitter, mask_ratio + jitter)

    def __post_init__(self) -> None:
        if self.mlp_hidden is None:
            object.__setattr__(self, "mlp_hidden", 4 * self.dim)
        if self.decoder_mlp_hidden is None:
            object.__setattr__(self, "decoder_mlp_hidden", 4 * self.decoder_dim)
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        low, high = self.mask_ratio - self.mask_ratio_jitter, self.mask_ratio + self.mask_ratio_jitter
        if self.mask_ratio_jitter < 0 or low < 0 or high > 1:
            raise ValueError(
                f"mask_ratio ± mask_ratio_jitter must stay within [0, 1], "
                f"got {self.mask_ratio} ± {self.mask_ratio_jitter}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "schema": self.schema.to_dict()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | TableMAEConfig) -> TableMAEConfig:
        """As :meth:`ModelConfig.from_dict`; ``schema`` may be a :class:`TableSchema` or its dict. Options
        removed in issue 18 (rejected by the benchmarks) load when they hold their old default."""
        if isinstance(values, Mapping):
            values = dict(values)
            for key, default in _REMOVED_OPTIONS.items():
                if key in values and values.pop(key) != default:
                    raise ValueError(f"this TableMAE config uses {key}, which masklab no longer supports (removed)")
            if isinstance(values.get("schema"), Mapping):
                values["schema"] = TableSchema.from_config(values["schema"])
        return super().from_dict(values)


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
class TableDraw:
    """One step's random draws: ``masked`` bool (B, C) True = an observed cell hidden and scored, and the
    :class:`VisibleLayout` of ``missing | masked``."""

    masked: Tensor
    layout: VisibleLayout


@dataclass(frozen=True)
class TablePrediction:
    """numeric: float (B, C) standardised predictions (meaningful in numeric columns);
    logits: one float (B, K_c) per categorical column, keyed by column index."""

    numeric: Tensor
    logits: dict[int, Tensor]

    def expand(self, rows: int) -> TablePrediction:
        """A one-row prediction repeated for ``rows`` rows (views, no copy)."""
        return TablePrediction(self.numeric.expand(rows, -1), {j: t.expand(rows, -1) for j, t in self.logits.items()})


class TableMAE(nn.Module):
    """Cell tokenizer -> encoder over visible cells (drop mode, padded) -> decoder over all columns -> a
    per-column head (a scalar for numeric columns, logits for categorical ones). See the module doc."""

    kind: ClassVar[str] = "table"

    def __init__(self, config: TableMAEConfig) -> None:
        super().__init__()
        self.config = config
        self.mask_strategy = resolve("random")  # masklab.masks.strategies; jittered by config.mask_ratio_jitter
        cards = config.schema.cardinalities
        n_columns = len(cards)
        self.tokenizer = CellTokenizer(cards, config.dim)
        enc = TransformerConfig(config.dim, config.depth, config.heads, config.mlp_hidden, dropout=config.dropout)
        self.encoder = Encoder(enc)
        dec = TransformerConfig(
            config.decoder_dim,
            config.decoder_depth,
            config.decoder_heads,
            config.decoder_mlp_hidden,
            dropout=config.dropout,
        )
        self.decoder_embed = Linear(config.dim, config.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(config.decoder_dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(n_columns, config.decoder_dim) * config.decoder_dim**-0.5)
        self.decoder = Encoder(dec)
        # Per-column heads: a scalar for a numeric column, K_c logits (one slice of a shared layer) otherwise.
        self.numeric_head_weight = nn.Parameter(torch.zeros(n_columns, config.decoder_dim))
        self.numeric_head_bias = nn.Parameter(torch.zeros(n_columns))
        # Only when there are categorical columns: an unused head would stall DDP (no gradient to reduce).
        self.categorical_head = Linear(config.decoder_dim, sum(cards)) if any(cards) else None
        starts = torch.cumsum(torch.tensor([0, *cards]), 0).tolist()
        self.category_slices = {j: (starts[j], starts[j] + k) for j, k in enumerate(cards) if k > 0}

    @classmethod
    def from_config(cls, config: TableMAEConfig | Mapping[str, Any]) -> TableMAE:
        """An untrained model from a config or its dict (``config.json["model"]``)."""
        return cls(TableMAEConfig.from_dict(config))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TableMAE:
        """:data:`PRESETS` ``name`` with ``overrides``; ``schema`` (the table's columns) is required."""
        if "schema" not in overrides:
            raise ValueError("a table preset needs schema= (the TableSchema of the data)")
        return cls(preset_config(TableMAEConfig, PRESETS, name, **overrides))

    # ---------------------------------------------------------------------------------------- masking
    def mask_observed(self, missing: Tensor, generator: torch.Generator) -> Tensor:
        """The training mask ``masked (B, C)``: a share of each row's *observed* cells (see the module doc),
        drawn by the registry's ``random`` strategy with missing cells protected (never hidden).

        Noise is drawn on CPU from ``generator``; missing cells are never picked.
        """
        rows, columns = missing.shape
        request = MaskRequest(
            rows, columns, self.config.mask_ratio, protected=missing.cpu(), device=missing.device,
            options={"jitter": self.config.mask_ratio_jitter},
        )  # fmt: skip
        return self.mask_strategy.draw(request, generator).masked

    def draw(self, batch: dict, generator: torch.Generator) -> TableDraw:
        """This step's random draws, made eagerly on the host: the mask and the packing of the visible cells
        (its width depends on the draw, so a compiled step takes it as an argument)."""
        masked = self.mask_observed(batch["missing"], generator)  # (B, C) observed cells we hide
        return TableDraw(masked, visible_layout(batch["missing"] | masked))

    # -------------------------------------------------------------------------------------- the model
    def forward_encoder(
        self, values: Tensor, categories: Tensor, hidden: Tensor, layout: VisibleLayout | None = None
    ) -> tuple[Tensor, VisibleLayout]:
        """Encode the visible cells only -> ``latent (B, V, D)`` and the packing layout (of ``hidden``)."""
        tokens = self.tokenizer(values, categories)  # (B, C, D)
        layout = visible_layout(hidden) if layout is None else layout
        index = layout.ids_keep[..., None].expand(-1, -1, tokens.shape[-1])  # (B, V, D)
        visible = torch.gather(tokens, 1, index)  # (B, V, D)
        return self.encoder(visible, blocked=padding_to_blocked(layout.padding)), layout

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
        if self.categorical_head is None:  # no categorical column
            return TablePrediction(numeric, {})
        logits_all = self.categorical_head(h)  # (B, C, sum K)
        logits = {j: logits_all[:, j, lo:hi] for j, (lo, hi) in self.category_slices.items()}  # (B, K_c) each
        return TablePrediction(numeric, logits)

    def forward(
        self, values: Tensor, categories: Tensor, hidden: Tensor, layout: VisibleLayout | None = None
    ) -> TablePrediction:
        """Predict every cell from the visible ones (``hidden`` False). values float (B, C), categories
        long (B, C) as encoded by :func:`masklab.tokenizers.table.encode_frame`."""
        latent, layout = self.forward_encoder(values, categories, hidden, layout)
        return self.heads(self.forward_decoder(latent, layout))

    def embed(self, values: Tensor, categories: Tensor, missing: Tensor) -> Tensor:
        """Pooled features ``(B, D)``: the encoder's mean over each row's observed cells (nothing else hidden)."""
        latent, layout = self.forward_encoder(values, categories, missing)  # (B, V, D)
        return visible_mean(latent, layout.padding, dim=1)

    def cell_errors(self, pred: TablePrediction, values: Tensor, categories: Tensor) -> Tensor:
        """Per-cell loss ``(B, C)``: squared error in standardised units for numeric cells, cross-entropy
        (nats) for categorical ones."""
        errors = (pred.numeric - values) ** 2  # (B, C)
        for j, logits in pred.logits.items():
            errors[:, j] = F.cross_entropy(logits.float(), categories[:, j], reduction="none")
        return errors

    def training_loss(self, batch: dict, generator: torch.Generator, *, drawn: TableDraw | None = None) -> LossOutput:
        """``batch``: values, categories, missing (see :class:`~masklab.tokenizers.table.EncodedTable`).

        ``drawn``: this step's :meth:`draw`, if made outside (``torch.compile`` cannot trace a
        ``torch.Generator``, so a compiled step takes its draws as an argument); drawn here otherwise.
        """
        missing = batch["missing"]
        drawn = self.draw(batch, generator) if drawn is None else drawn
        masked = drawn.masked  # (B, C) observed cells we hide
        pred = self(batch["values"], batch["categories"], missing | masked, drawn.layout)
        errors = self.cell_errors(pred, batch["values"], batch["categories"])
        metrics: dict[str, float | Tensor] = {"masked_cells": masked.float().sum(1).mean()}
        return LossOutput(loss_on_masked(errors, masked), metrics)


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
        probs: dict[int, Tensor] = {}  # column -> summed class probabilities (B, K_c)
        hiddens = [m] + [m | p.to(device) for p in patterns]
        for hidden in hiddens:
            lost_all = hidden.all(1, keepdim=True) & ~m.all(1, keepdim=True)  # (B, 1) pattern hid the last cell
            hidden = torch.where(lost_all, m, hidden)
            pred = model(v, c, hidden)
            numeric += pred.numeric.double()
            for j, logits in pred.logits.items():
                prob = logits.float().softmax(-1)
                probs[j] = probs[j] + prob if j in probs else prob
        numeric_out[rows] = (numeric / len(hiddens)).cpu()
        for j, p in probs.items():
            category_out[rows, j] = p.argmax(-1).cpu()
    return numeric_out, category_out


@torch.no_grad()
def reconstruction_errors(
    model: TableMAE, values: Tensor, categories: Tensor, missing: Tensor, patterns: Tensor
) -> Tensor:
    """Per-cell reconstruction error ``(N, C)`` float64: each observed cell's error
    (:meth:`TableMAE.cell_errors`: squared error in standardised units, cross-entropy for categories)
    averaged over the patterns ``(K, C)`` that hid it; NaN for a cell that is missing or that no pattern hid.
    A pattern that hides every column leaves the decoder only mask tokens, so its prediction is the same for
    every row: it is computed once and broadcast."""
    device = next(model.parameters()).device
    out = torch.full(values.shape, math.nan, dtype=torch.float64)
    for rows in _chunks(len(values)):
        v, c, m = values[rows].to(device), categories[rows].to(device), missing[rows].to(device)
        total = torch.zeros(v.shape, dtype=torch.float64, device=device)
        count = torch.zeros(v.shape, dtype=torch.float64, device=device)
        for pattern in patterns.to(device):
            scored = pattern & ~m  # (B, C) observed cells this pattern hides
            # An all-hidden pattern is row-independent: one row's prediction serves all.
            pred = model(v[:1], c[:1], pattern[None]).expand(len(v)) if pattern.all() else model(v, c, m | pattern)
            errors = model.cell_errors(pred, v, c).double()
            total += torch.where(scored, errors, 0.0)
            count += scored.double()
        out[rows] = torch.where(count > 0, total / count.clamp_min(1), math.nan).cpu()
    return out
