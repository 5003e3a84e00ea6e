"""Every model family keeps the one contract (masklab.core.contract.MaskedModel): presets, config round trip,
registry-resolved masking, pooled ``embed``, and a training step that ``torch.compile(fullgraph=True)`` traces
and that equals eager. The families: MAE, BERT-MLM, GPT, TableMAE, PatchTST (``series``) and its classifier,
the segmenter; ``tests/models/test_trace.py`` checks ``torch.jit.trace`` and ``torch.export`` on each.

A step's random draws (masks, corruption) use an explicit CPU ``torch.Generator``, which Dynamo cannot trace;
so each model's ``draw(batch, generator)`` makes them eagerly and ``training_loss(..., drawn=...)`` takes them.
The eager step with the same seed draws exactly the same, so compiled == eager checks the whole step.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from masklab.core.contract import MaskedModel, saved_config
from masklab.data.pixel_masks import SegmentBatch
from masklab.data.series import SeriesBatch
from masklab.masks import strategies
from masklab.models.registry import build_model
from masklab.nn import cpu_linear_backend
from masklab.tokenizers.table import ColumnSpec, TableSchema

SCHEMA = TableSchema(
    (
        ColumnSpec("a", "numeric", 1.0, 2.0),
        ColumnSpec("b", "categorical", categories=("x", "y", "z")),
        ColumnSpec("c", "numeric"),
        ColumnSpec("e", "categorical", categories=("u", "v")),
    )
)


def _mae():
    from masklab.models.mae import MAE

    return MAE.from_preset("mae-tiny", channels=1)


def _mlm():
    from masklab.models.mlm import BertForMLM

    return BertForMLM.from_preset(
        "bert-tiny", vocab_size=64, mask_id=3, special_ids=(0, 1, 2, 3), dim=32, heads=2, dropout=0.0,
        attn_dropout=0.0, max_len=32,
    )  # fmt: skip


def _clm():
    from masklab.models.clm import GPT

    return GPT.from_preset("gpt-tiny", vocab_size=40, dim=32, context=32)


def _table():
    from masklab.models.table import TableMAE

    return TableMAE.from_preset("table-tiny", schema=SCHEMA)


def _series():
    from masklab.models.series import PatchTST

    return PatchTST.from_preset("series-tiny", channels=2)


def _series_classifier():
    from masklab.models.series import SeriesClassifier

    return SeriesClassifier.from_preset("series-tiny", channels=2, num_classes=3)


def _segment():
    from masklab.models.mae import MAE
    from masklab.models.segment import Segmenter

    return Segmenter.from_preset("probe", encoder=MAE.from_preset("mae-tiny", channels=1).config)


def _series_batch(g: torch.Generator, labelled: bool = False) -> SeriesBatch:
    """3 series of 2 channels: row 1 is 10 steps long (padded to 16), ~20% of the steps unobserved."""
    padding = torch.zeros(3, 16, dtype=torch.bool)
    padding[1, 10:] = True
    observed = (torch.rand(3, 16, 2, generator=g) > 0.2) & ~padding[..., None]
    values = torch.where(observed, torch.randn(3, 16, 2, generator=g).cumsum(1), 0.0)
    return SeriesBatch(values, padding, observed, torch.tensor([0, 2, 1]) if labelled else None)


def _batch(kind: str, g: torch.Generator):
    if kind == "mae":
        return SimpleNamespace(images=torch.rand(4, 1, 16, 16, generator=g), labels=None)
    if kind == "mlm":
        ids = torch.randint(4, 64, (4, 12), generator=g)
        padding = torch.zeros(4, 12, dtype=torch.bool)
        padding[1, 8:] = True
        ids = ids.masked_fill(padding, 0)
        return {"ids": ids, "padding": padding, "word_ids": torch.arange(12).expand(4, -1).masked_fill(padding, -1)}
    if kind == "clm":
        ids = torch.randint(0, 40, (3, 13), generator=g)
        padding = torch.zeros(3, 13, dtype=torch.bool)
        padding[2, 9:] = True
        return {"ids": ids, "padding": padding}
    if kind in ("series", "series-classifier"):
        return _series_batch(g, labelled=kind == "series-classifier")
    if kind == "segment":
        images = torch.rand(4, 1, 16, 16, generator=g)
        return SegmentBatch(images, (images[:, 0] > 0.5).long())  # targets (B, H, W)
    values = torch.randn(6, 4, generator=g)
    categories = torch.stack([torch.zeros(6, dtype=torch.long), torch.randint(3, (6,), generator=g),
                              torch.zeros(6, dtype=torch.long), torch.randint(2, (6,), generator=g)], 1)  # fmt: skip
    return {"values": values, "categories": categories, "missing": torch.rand(6, 4, generator=g) < 0.3}


def _embed(kind: str, model, batch) -> torch.Tensor:
    if kind in ("mae", "segment"):
        return model.embed(batch.images)
    if kind in ("mlm", "clm"):
        return model.embed(batch["ids"], batch["padding"])
    if kind in ("series", "series-classifier"):
        return model.embed(batch)
    return model.embed(batch["values"], batch["categories"], batch["missing"])


def _rows(kind: str, batch) -> int:
    if kind in ("mae", "segment"):
        return len(batch.images)
    if kind in ("series", "series-classifier"):
        return len(batch.values)
    return len(next(iter(batch.values())))


BUILD = {"mae": _mae, "mlm": _mlm, "clm": _clm, "table": _table, "series": _series,
         "series-classifier": _series_classifier, "segment": _segment}  # fmt: skip
KINDS = list(BUILD)
# Every tiny preset here is 32 wide; a series model's features are C * (D + 2) (pooled tokens + level + scale).
EMBED_WIDTH = {kind: 32 for kind in KINDS} | {"series": 2 * 34, "series-classifier": 2 * 34}


def _model(kind: str):
    torch.manual_seed(0)
    return BUILD[kind]().eval()  # eval: no dropout, so eager and compiled draw nothing from torch's global RNG


@pytest.mark.parametrize("kind", KINDS)
def test_presets_build_models_that_keep_the_contract(kind):
    model = _model(kind)
    assert isinstance(model, MaskedModel) and model.kind == kind
    g = torch.Generator().manual_seed(0)
    batch = _batch(kind, g)
    features = _embed(kind, model, batch)
    assert features.shape == (_rows(kind, batch), EMBED_WIDTH[kind]) and bool(torch.isfinite(features).all())


@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trips_through_json_and_the_registry(kind):
    model = _model(kind)
    saved = json.loads(json.dumps(saved_config(model)))
    assert saved["kind"] == kind
    assert type(model.config).from_dict(saved) == model.config
    assert type(model.config).from_dict(model.config.to_dict()) == model.config
    rebuilt = build_model({"kind": kind, "model": saved})
    assert type(rebuilt) is type(model) and rebuilt.config == model.config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    with pytest.raises(ValueError, match="unknown"):
        type(model.config).from_dict({**saved, "no_such_field": 1})
    with pytest.raises(ValueError, match="preset"):
        type(model).from_preset("no-such-preset")


HIDES_NOTHING = {
    "clm": "a causal LM hides nothing: its targets are its inputs shifted by one",
    "series-classifier": "fine-tuning the series classifier hides no patch: it classifies whole series",
    "segment": "the segmenter hides nothing in training: its encoder sees every patch, it learns per-pixel labels",
}
MASKING = [("mae", "random"), ("mlm", "bernoulli"), ("table", "random"), ("series", "random")] + [
    pytest.param(kind, None, marks=pytest.mark.skip(reason=why)) for kind, why in HIDES_NOTHING.items()
]


def _spy_on(monkeypatch, names) -> list[tuple[str, strategies.MaskRequest]]:
    """Swap the registry's entries ``names`` for spies that record each request and draw as before."""
    calls: list[tuple[str, strategies.MaskRequest]] = []
    for name in names:
        original = strategies.STRATEGIES[name]

        def spy(request, generator, name=name, original=original):
            calls.append((name, request))
            return original.draw(request, generator)

        monkeypatch.setitem(strategies.STRATEGIES, name, dataclasses.replace(original, draw=spy))
    return calls


@pytest.mark.parametrize(("kind", "name"), MASKING)
def test_masking_resolves_through_the_registry(kind, name, monkeypatch):
    """Swap the registry's entry for a spy: the model's step must draw through it."""
    calls = _spy_on(monkeypatch, [name])
    model = _model(kind)
    model.training_loss(_batch(kind, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    assert len(calls) == 1 and 0 < calls[0][1].ratio < 1


@pytest.mark.parametrize("kind", list(HIDES_NOTHING))
def test_models_that_hide_nothing_draw_no_mask(kind, monkeypatch):
    calls = _spy_on(monkeypatch, list(strategies.STRATEGIES))
    model = _model(kind)
    model.training_loss(_batch(kind, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    assert calls == []


@pytest.mark.parametrize("mask_kind", ["tail", "mixed"])
def test_series_tail_and_mixed_masking_resolve_through_the_registry(mask_kind, monkeypatch):
    """``tail`` is the registry's strategy; ``mixed`` draws both and keeps one per series (a coin each)."""
    calls = _spy_on(monkeypatch, ["random", "tail"])
    from masklab.models.series import PatchTST

    torch.manual_seed(0)
    model = PatchTST.from_preset("series-tiny", channels=2, mask_kind=mask_kind, tail_patches=1).eval()
    batch = _batch("series", torch.Generator().manual_seed(0))
    masked = model.draw(batch, torch.Generator().manual_seed(1))  # (B, C, L)
    assert sorted(name for name, _ in calls) == (["tail"] if mask_kind == "tail" else ["random", "tail"])
    tail = next(request for name, request in calls if name == "tail")
    assert tail.options["count"] == 1 and tail.batch == 3 * 2  # every channel of every series is a row
    if mask_kind == "tail":  # the last real patch of each channel: row 1 has 10 steps -> 3 patches
        expected = torch.zeros(3, 2, 4, dtype=torch.bool)
        expected[[0, 2], :, 3] = True
        expected[1, :, 2] = True
        assert torch.equal(masked, expected)


def test_configs_saved_before_the_contract_still_load():
    """Runs saved by the series and segment families before they joined the contract (``"kind"`` inside
    ``model``, the classifier's ``{"series", "num_classes", "head_dropout"}``) rebuild the same models."""
    series = _model("series")
    classifier = _model("series-classifier")
    segment = _model("segment")
    old = {
        "series": {"kind": "series", **dataclasses.asdict(series.config)},
        "series-classifier": {"kind": "series-classifier", "series": dataclasses.asdict(classifier.config.series),
                              "num_classes": 3, "head_dropout": 0.0},
        "segment": {"kind": "segment", **dataclasses.asdict(segment.config)},
    }  # fmt: skip
    for kind, model in (("series", series), ("series-classifier", classifier), ("segment", segment)):
        saved = json.loads(json.dumps(old[kind]))
        assert saved_config(model) == saved  # what a run writes today is what it wrote then
        rebuilt = build_model({"kind": kind, "model": saved})
        assert type(rebuilt) is type(model) and rebuilt.config == model.config


def _compiled_equals_eager(kind: str, backend: str) -> None:
    model = _model(kind)
    batch = _batch(kind, torch.Generator().manual_seed(0))
    eager = model.training_loss(batch, torch.Generator().manual_seed(1))
    kwargs = {}
    if hasattr(model, "draw"):  # the causal LM, the series classifier and the segmenter draw nothing
        kwargs["drawn"] = model.draw(batch, torch.Generator().manual_seed(1))  # the same draws as `eager`
    torch._dynamo.reset()
    with cpu_linear_backend("torch"):  # the oneDNN linear is an eager fast path
        step = torch.compile(model.training_loss, fullgraph=True, backend=backend)
        compiled = step(batch, torch.Generator().manual_seed(1), **kwargs)
    torch.testing.assert_close(compiled.loss, eager.loss, atol=1e-5, rtol=1e-5)
    for name in eager.metrics:
        torch.testing.assert_close(torch.as_tensor(compiled.metrics[name]), torch.as_tensor(eager.metrics[name]))


@pytest.mark.slow  # 2-4 s a model, plus Dynamo's one-time start-up (~15 s under load)
@pytest.mark.parametrize("kind", KINDS)
def test_training_step_traces_as_one_graph(kind):
    """fullgraph capture (Dynamo, no code generation): no graph break, no host sync in the step."""
    _compiled_equals_eager(kind, "eager")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_training_step_equals_eager(kind):
    """The same through Inductor (generated C++ on CPU)."""
    _compiled_equals_eager(kind, "inductor")
