"""A series run saved before the channel-mixing, pooling, visible-step-statistics and statistics-input options
(issue 20's accuracy work) has none of those fields in its config: it must build the same model and give the
same numbers as the code that saved it (the golden values below were computed by that code, commit c449038)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masklab.data.series import SeriesBatch, collate
from masklab.models.series import PatchTST, SeriesClassifier, SeriesConfig
from masklab.models.series.tasks import forecast

# SeriesConfig.to_dict() of series-tiny (channels 2, patch 4, stride 2) as the old code wrote it
OLD = dict(channels=2, depth=2, dim=32, dropout=0.0, final_norm=False, heads=2, loss_on_missing=False,
           mask_kind="random", mask_ratio=0.4, max_patches=64, min_scale=1e-5, missing="mean", mlp_hidden=64,
           norm_eps=1e-5, patch_len=4, scaling=True, stride=2, tail_patches=2)  # fmt: skip


def _batch() -> SeriesBatch:
    rng = np.random.default_rng(0)
    b = collate([np.cumsum(rng.normal(size=(n, 2)), axis=0).astype(np.float32) for n in (9, 14)])
    return SeriesBatch(b.values.double(), b.padding, b.observed)


def test_an_old_config_defaults_to_the_original_model() -> None:
    config = SeriesConfig.from_dict(OLD)
    assert (config.channel_mixing, config.pool, config.norm_visible, config.stats_input) == (
        False, "mean", False, False,
    )  # fmt: skip
    assert (config.input_transform, config.input_scale) == ("none", 1.0)
    model = PatchTST.from_config(OLD)
    assert model.embed_dim == 2 * (32 + 2)
    assert tuple(model.patch_embed.weight.shape) == (32, 4) and tuple(model.head.weight.shape) == (4, 32)
    classifier = SeriesClassifier.from_config({"series": OLD, "num_classes": 3, "head_dropout": 0.1})
    assert tuple(classifier.classifier.weight.shape) == (3, 68)


def test_an_old_config_gives_the_old_numbers() -> None:
    torch.manual_seed(0)
    model = PatchTST.from_config(OLD).double().eval()
    batch = _batch()
    embedding = model.embed(batch)
    assert embedding.shape == (2, 68)
    assert embedding.sum().item() == pytest.approx(1.301744426841731, abs=1e-9)
    np.testing.assert_allclose(embedding[0, :3].tolist(), [0.14639438354756928, -0.7468852151976035,
                                                           1.1099021975613925], atol=1e-9)  # fmt: skip
    loss = model.training_loss(batch, torch.Generator().manual_seed(3)).loss
    assert loss.item() == pytest.approx(0.9387170967140321, abs=1e-9)
    assert forecast(model, batch, 3).sum().item() == pytest.approx(5.35090422616841, abs=1e-9)


def test_stats_input_needs_the_statistics() -> None:
    model = PatchTST.from_config({**OLD, "stats_input": True})
    inputs = model.prepare(collate([np.zeros((8, 2), dtype=np.float32)]))
    with pytest.raises(ValueError, match="stats_input"):
        model.encode(inputs.patches, inputs.padding)


def test_bad_pool_is_named() -> None:
    with pytest.raises(ValueError, match="pool"):
        SeriesConfig.from_dict({**OLD, "pool": "max"})
