"""Every model family keeps the one contract (masklab.core.contract.MaskedModel): presets, config round trip,
registry-resolved masking, pooled ``embed``, and a training step that ``torch.compile(fullgraph=True)`` traces
and that equals eager.

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
    values = torch.randn(6, 4, generator=g)
    categories = torch.stack([torch.zeros(6, dtype=torch.long), torch.randint(3, (6,), generator=g),
                              torch.zeros(6, dtype=torch.long), torch.randint(2, (6,), generator=g)], 1)  # fmt: skip
    return {"values": values, "categories": categories, "missing": torch.rand(6, 4, generator=g) < 0.3}


def _embed(kind: str, model, batch) -> torch.Tensor:
    if kind == "mae":
        return model.embed(batch.images)
    if kind in ("mlm", "clm"):
        return model.embed(batch["ids"], batch["padding"])
    return model.embed(batch["values"], batch["categories"], batch["missing"])


BUILD = {"mae": _mae, "mlm": _mlm, "clm": _clm, "table": _table}
KINDS = list(BUILD)


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
    rows = len(batch.images) if kind == "mae" else len(next(iter(batch.values())))
    assert features.shape == (rows, 32) and bool(torch.isfinite(features).all())  # every tiny preset here is 32 wide


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


@pytest.mark.parametrize(("kind", "name"), [("mae", "random"), ("mlm", "bernoulli"), ("table", "random")])
def test_masking_resolves_through_the_registry(kind, name, monkeypatch):
    """Swap the registry's entry for a spy: the model's step must draw through it."""
    calls = []
    original = strategies.STRATEGIES[name]

    def spy(request, generator):
        calls.append(request)
        return original.draw(request, generator)

    monkeypatch.setitem(strategies.STRATEGIES, name, dataclasses.replace(original, draw=spy))
    model = _model(kind)
    model.training_loss(_batch(kind, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(1))
    assert len(calls) == 1 and 0 < calls[0].ratio < 1


def _compiled_equals_eager(kind: str, backend: str) -> None:
    model = _model(kind)
    batch = _batch(kind, torch.Generator().manual_seed(0))
    eager = model.training_loss(batch, torch.Generator().manual_seed(1))
    kwargs = {}
    if kind != "clm":  # a causal LM draws nothing
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
