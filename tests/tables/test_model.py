"""TableMAE: drop-mode packing, decoder placement, ReMasker loss, config round trip."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from masklab.core.contract import saved_config
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
    return TableMAE.from_preset("table-tiny", schema=SCHEMA, **overrides).eval()


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


def test_config_round_trip_through_registry():
    model = tiny_model(mask_ratio=0.3)
    rebuilt = build_model({"kind": "table", "model": saved_config(model)})
    assert isinstance(rebuilt, TableMAE) and rebuilt.config == model.config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match=r"unknown TableMAEConfig fields \['wings'\]"):
        TableMAE.from_config({**saved_config(model), "wings": 2})
    with pytest.raises(ValueError, match="unknown TableMAEConfig preset"):
        TableMAE.from_preset("table-huge", schema=SCHEMA)
    with pytest.raises(ValueError, match="mask_ratio"):
        TableMAEConfig(SCHEMA, mask_ratio=1.0)
    with pytest.raises(ValueError, match="must stay within"):
        TableMAEConfig(SCHEMA, mask_ratio=0.5, mask_ratio_jitter=0.6)


def test_configs_with_removed_options_load_when_they_used_the_defaults():
    model = tiny_model()
    saved = {**saved_config(model), "numeric_loss": "mse", "nll_beta": 0.5, "trim_fraction": 0.0}  # 0.x runs
    loaded = TableMAE.from_config(saved)
    assert loaded.config == model.config
    loaded.load_state_dict(model.state_dict())  # strict: same keys
    with pytest.raises(ValueError, match="trim_fraction, which masklab no longer supports"):
        TableMAE.from_config({**saved_config(model), "trim_fraction": 0.1})


def test_all_hidden_pattern_is_broadcast_from_one_row(gen):
    from masklab.models.table.model import reconstruction_errors

    model = tiny_model().eval()
    b = batch(gen, rows=16)
    everything = torch.ones(1, 5, dtype=torch.bool)
    fast = reconstruction_errors(model, b["values"], b["categories"], b["missing"], everything)
    with torch.no_grad():  # every row through the model, as for any other pattern
        pred = model(b["values"], b["categories"], everything.expand(16, -1))
        slow = model.cell_errors(pred, b["values"], b["categories"])
    want = torch.where(b["missing"], torch.nan, slow.double())
    torch.testing.assert_close(fast, want, rtol=1e-5, atol=1e-6, equal_nan=True)
