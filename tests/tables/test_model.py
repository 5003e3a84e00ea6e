"""TableMAE: drop-mode packing, decoder placement, ReMasker loss, config round trip."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from masklab.models.registry import build_model
from masklab.models.table import TableMAE, TableMAEConfig
from masklab.models.table.model import visible_layout
from masklab.tokenizers.table import ColumnSpec, TableSchema

SCHEMA = TableSchema(
    (
        ColumnSpec("a", "numeric", 1.0, 2.0),
        ColumnSpec("b", "categorical", categories=("x", "y", "z")),
        ColumnSpec("c", "numeric"),
        ColumnSpec("d", "numeric"),
        ColumnSpec("e", "categorical", categories=("u", "v")),
    )
)


def tiny_model(**overrides) -> TableMAE:
    torch.manual_seed(0)
    return TableMAE(TableMAEConfig.preset("table-tiny", SCHEMA, **overrides)).eval()


def batch(gen, rows=6):
    values = torch.randn(rows, 5, generator=gen)
    categories = torch.stack(
        [torch.zeros(rows, dtype=torch.long), torch.randint(3, (rows,), generator=gen),
         torch.zeros(rows, dtype=torch.long), torch.zeros(rows, dtype=torch.long),
         torch.randint(2, (rows,), generator=gen)], dim=1,
    )  # fmt: skip
    missing = torch.rand(rows, 5, generator=gen) < 0.3
    return {"values": values, "categories": categories, "missing": missing}


def test_visible_layout_packs_in_column_order():
    hidden = torch.tensor([[False, True, False, True], [True, True, True, False], [True, True, True, True]])
    layout = visible_layout(hidden)
    assert layout.ids_keep.tolist() == [[0, 2], [3, 0], [0, 1]]
    assert layout.padding.tolist() == [[False, False], [False, True], [True, True]]
    # Visible-first orders are [0, 2, 1, 3], [3, 0, 1, 2], [0, 1, 2, 3]; ids_restore inverts them.
    assert layout.ids_restore.tolist() == [[0, 2, 1, 3], [1, 2, 3, 0], [0, 1, 2, 3]]


def test_drop_mode_equals_encoding_each_row_alone(gen):
    model = tiny_model()
    b = batch(gen)
    hidden = b["missing"] | (torch.rand(6, 5, generator=gen) < 0.3)
    hidden[0] = True  # a row with nothing visible must stay finite
    latent, _ = model.forward_encoder(b["values"], b["categories"], hidden)  # (B, V, D)
    assert torch.isfinite(latent).all()
    tokens = model.tokenizer(b["values"], b["categories"])  # (B, C, D)
    for row in range(1, 6):
        visible = (~hidden[row]).nonzero().squeeze(1)
        alone = model.encoder(tokens[row : row + 1, visible])  # (1, n, D) no padding at all
        torch.testing.assert_close(latent[row, : len(visible)], alone[0], atol=1e-5, rtol=1e-5)


def test_decoder_puts_mask_tokens_at_hidden_cells(gen):
    model = tiny_model()
    model.decoder = nn.Identity()  # expose the decoder's input
    b = batch(gen)
    hidden = b["missing"] | (torch.rand(6, 5, generator=gen) < 0.4)
    hidden[:, 0] = False  # every row keeps a visible cell
    latent, layout = model.forward_encoder(b["values"], b["categories"], hidden)
    out = model.forward_decoder(latent, layout) - model.decoder_pos_embed  # (B, C, Dd)
    embedded = model.decoder_embed(latent)  # (B, V, Dd)
    for row in range(6):
        visible = (~hidden[row]).nonzero().squeeze(1)
        torch.testing.assert_close(out[row, visible], embedded[row, : len(visible)])
        hidden_cols = hidden[row].nonzero().squeeze(1)
        torch.testing.assert_close(out[row, hidden_cols], model.mask_token.expand(len(hidden_cols), -1))


def test_mask_observed_fixed_ratio_is_remasker(gen):
    model = tiny_model(mask_ratio=0.5, mask_ratio_jitter=0.0)
    missing = torch.rand(200, 5, generator=gen) < 0.3
    masked = model.mask_observed(missing, gen)
    assert not (masked & missing).any()
    n_observed = (~missing).sum(1)
    assert torch.equal(masked.sum(1), n_observed - (n_observed * 0.5).long())  # MAE's int() rounding


def test_mask_observed_jittered_share(gen):
    model = tiny_model(mask_ratio=0.5, mask_ratio_jitter=0.25)
    missing = torch.rand(2000, 5, generator=gen) < 0.3
    masked = model.mask_observed(missing, gen)
    assert not (masked & missing).any()
    n_observed = (~missing).sum(1)
    count = masked.sum(1)
    assert ((count >= 1) | (n_observed == 0)).all() and (count <= n_observed).all()
    share = (count / n_observed.clamp_min(1))[n_observed == 5].float()  # 5 observed: hides round(U(.25,.75)*5)
    assert set(count[n_observed == 5].tolist()) == {1, 2, 3, 4}
    assert abs(share.mean().item() - 0.5) < 0.05


def replayed_cell_errors(model, b, gen, state):
    """Replay ``training_loss``'s mask from generator ``state`` -> ``masked (B, C)`` and the per-cell loss
    ``(B, C)`` computed by hand (squared error; cross-entropy in the categorical columns 1 and 4)."""
    gen.set_state(state)
    masked = model.mask_observed(b["missing"], gen)
    pred = model(b["values"], b["categories"], b["missing"] | masked)
    errors = (pred.numeric - b["values"]) ** 2
    for j in (1, 4):
        errors[:, j] = F.cross_entropy(pred.logits[j], b["categories"][:, j], reduction="none")
    return masked, errors


def test_training_loss_counts_only_masked_observed_cells(gen):
    model = tiny_model().train()
    b = batch(gen, rows=16)
    state = gen.get_state()
    out = model.training_loss(b, gen)
    masked, errors = replayed_cell_errors(model, b, gen, state)
    torch.testing.assert_close(out.loss, errors[masked].mean())
    # Values behind missing cells are never seen nor scored.
    gen.set_state(state)
    scrambled = {**b, "values": torch.where(b["missing"], torch.full_like(b["values"], 1e6), b["values"])}
    torch.testing.assert_close(model.training_loss(scrambled, gen).loss, out.loss)


def test_trimmed_loss_drops_the_worst_rows(gen):
    """trim_fraction: the loss is the plain masked mean over the rows whose mean hidden-cell loss is lowest."""
    model = tiny_model(trim_fraction=0.25).train()
    b = batch(gen, rows=16)
    state = gen.get_state()
    out = model.training_loss(b, gen)
    masked, errors = replayed_cell_errors(model, b, gen, state)
    errors = errors.double()
    row_loss = [errors[r][masked[r]].mean().item() if masked[r].any() else 0.0 for r in range(16)]
    kept = sorted(range(16), key=row_loss.__getitem__)[:12]  # ceil(0.75 * 16) rows with the lowest loss
    want = torch.cat([errors[r][masked[r]] for r in kept]).mean()
    torch.testing.assert_close(out.loss.double(), want, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="trim_fraction"):
        tiny_model(trim_fraction=1.0)


def test_config_round_trip_through_registry():
    model = tiny_model(mask_ratio=0.3)
    rebuilt = build_model({"kind": "table", "model": model.model_config()})
    assert isinstance(rebuilt, TableMAE) and rebuilt.config == model.config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match=r"unknown TableMAE config keys \['wings'\]"):
        TableMAE.from_config({**model.model_config(), "wings": 2})
    with pytest.raises(ValueError, match="unknown table preset"):
        TableMAEConfig.preset("table-huge", SCHEMA)
    with pytest.raises(ValueError, match="mask_ratio"):
        TableMAEConfig(SCHEMA, mask_ratio=1.0)
    with pytest.raises(ValueError, match="must stay within"):
        TableMAEConfig(SCHEMA, mask_ratio=0.5, mask_ratio_jitter=0.6)


def test_gaussian_nll_head_only_with_the_option():
    plain = tiny_model()
    assert not any("logvar" in k for k in plain.state_dict())
    gaussian = tiny_model(numeric_loss="gaussian_nll")
    extra = set(gaussian.state_dict()) - set(plain.state_dict())
    assert extra == {"numeric_logvar_weight", "numeric_logvar_bias"}
    assert gaussian.numeric_logvar_weight.shape == (5, 32) and gaussian.numeric_logvar_bias.shape == (5,)
    b = batch(torch.Generator().manual_seed(0))
    assert plain(b["values"], b["categories"], b["missing"]).log_var is None
    with pytest.raises(ValueError, match="numeric_loss"):
        TableMAEConfig(SCHEMA, numeric_loss="laplace")
    with pytest.raises(ValueError, match="nll_beta"):
        TableMAEConfig(SCHEMA, numeric_loss="gaussian_nll", nll_beta=2.0)


def test_gaussian_nll_matches_float64_reference(gen):
    model = tiny_model(numeric_loss="gaussian_nll").train()
    with torch.no_grad():  # a non-trivial log-variance head (it starts at zero)
        model.numeric_logvar_weight.normal_(0.0, 0.5)
        model.numeric_logvar_bias.normal_(0.0, 0.5)
    b = batch(gen, rows=16)
    state = gen.get_state()
    out = model.training_loss(b, gen)
    gen.set_state(state)
    masked = model.mask_observed(b["missing"], gen)
    hidden = b["missing"] | masked

    # Reference on full tensors, by hand in float64: decoder output -> heads -> NLL / cross-entropy.
    latent, layout = model.forward_encoder(b["values"], b["categories"], hidden)
    h = model.forward_decoder(latent, layout).double()  # (B, C, Dd)
    mu = (h * model.numeric_head_weight.double()).sum(-1) + model.numeric_head_bias.double()
    log_var = ((h * model.numeric_logvar_weight.double()).sum(-1) + model.numeric_logvar_bias.double()).clamp(-10, 10)
    x = b["values"].double()
    nll = 0.5 * (math.log(2 * math.pi) + log_var + (x - mu) ** 2 / torch.exp(log_var))  # (B, C)
    for j in (1, 4):
        lo, hi = model.category_slices[j]
        logits = model.categorical_head(h.float()[:, j]).double()[:, lo:hi]
        nll[:, j] = -torch.log_softmax(logits, -1).gather(1, b["categories"][:, j : j + 1]).squeeze(1)

    pred = model(b["values"], b["categories"], hidden)
    assert pred.log_var.shape == (16, 5)
    torch.testing.assert_close(pred.log_var.double(), log_var, rtol=1e-5, atol=1e-5)
    errors = model.cell_errors(pred, b["values"], b["categories"])
    torch.testing.assert_close(errors.double(), nll, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.metrics["cell_nll"].double(), nll[masked].mean(), rtol=1e-5, atol=1e-5)
    # beta-NLL (beta = 0.5): numeric cells weighted by var ** 0.5, categorical cells by 1.
    weight = torch.exp(0.5 * log_var)
    weight[:, [1, 4]] = 1.0
    torch.testing.assert_close(out.loss.double(), (nll * weight)[masked].mean(), rtol=1e-5, atol=1e-5)
    # The weight carries no gradient: d loss / d log_var = weight * 0.5 * (1 - (x - mu)^2 / var) per cell.
    model.zero_grad()
    gen.set_state(state)
    model.training_loss(b, gen).loss.backward()
    numeric = torch.zeros(16, 5, dtype=torch.bool)
    numeric[:, [0, 2, 3]] = True
    cells = masked & numeric
    d_log_var = torch.where(cells, weight * 0.5 * (1 - (x - mu) ** 2 / torch.exp(log_var)), 0.0) / masked.sum()
    expected = (d_log_var.detach().sum(0)).float()
    torch.testing.assert_close(model.numeric_logvar_bias.grad, expected, rtol=1e-4, atol=1e-6)


def test_gaussian_nll_config_round_trip_and_old_configs_load():
    model = tiny_model(numeric_loss="gaussian_nll", nll_beta=0.25)
    rebuilt = build_model({"kind": "table", "model": model.model_config()})
    assert rebuilt.config == model.config and rebuilt.config.numeric_loss == "gaussian_nll"
    rebuilt.load_state_dict(model.state_dict())
    # A config / state dict saved before the option existed (no numeric_loss, nll_beta) loads as "mse".
    old = tiny_model()
    saved = {k: v for k, v in old.model_config().items() if k not in ("numeric_loss", "nll_beta")}
    loaded = TableMAE.from_config(saved)
    assert loaded.config == old.config and loaded.config.numeric_loss == "mse"
    loaded.load_state_dict(old.state_dict())  # strict: same keys as ever
