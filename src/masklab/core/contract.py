"""The masked-model contract: what a model, its config and its data provide to the layers above.

A masked model is tokenizer -> mask generator -> encoder -> decoder/head -> loss on the hidden positions.
Every model family (MAE, MLM, CLM, table, ...) implements :class:`MaskedModel`; :func:`masklab.train.fit`
trains anything that does, on anything that implements :class:`TrainData`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import torch


@dataclass
class LossOutput:
    """What ``training_loss`` returns: a differentiable scalar and extra scalars to log (floats or
    0-d tensors; tensors are averaged on the device, so returning them avoids a sync per step)."""

    loss: torch.Tensor
    metrics: dict[str, float | torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class TrainData(Protocol):
    """A dataset the loop can sample: indices in, one (micro-)batch out, in any structure
    :func:`masklab.train.loop.move_to` understands (tensors in dicts, lists, tuples, dataclasses)."""

    def __len__(self) -> int:
        """Number of examples."""
        ...

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> Any:
        """Build and augment the batch for ``indices`` on CPU; random draws use ``generator``."""
        ...


@runtime_checkable
class Trainable(Protocol):
    """Anything :func:`masklab.train.fit` can train: an ``nn.Module`` with a ``training_loss`` method."""

    def training_loss(self, batch: Any, generator: torch.Generator) -> LossOutput: ...


@runtime_checkable
class MaskedModel(Trainable, Protocol):
    """The contract every masklab model family implements.

    - ``kind``: the name stored in a run's ``config.json`` (``"mae"``, ``"mlm"``, ``"clm"``, ``"table"``, ...);
    - ``config``: a frozen config dataclass (:class:`ModelConfig`) that rebuilds the model;
    - ``from_config(config)`` / ``from_preset(name, **overrides)``: build an untrained model;
    - ``training_loss(batch, generator)``: the masked-modelling loss (hidden positions only);
    - ``embed(...)``: pooled features ``(B, D)`` for downstream use.
    """

    kind: ClassVar[str]
    config: Any

    @classmethod
    def from_config(cls, config: Any) -> MaskedModel: ...

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MaskedModel: ...

    def embed(self, *args: Any, **kwargs: Any) -> torch.Tensor: ...


C = TypeVar("C", bound="ModelConfig")


class ModelConfig:
    """Mixin for a model family's frozen config dataclass: one ``to_dict`` / ``from_dict`` spelling.

    ``to_dict`` gives JSON-able values (tuples become lists, nested configs become dicts); ``from_dict``
    rebuilds the config, rejecting unknown keys by name. A subclass with nested config fields lists them in
    ``nested`` (field name -> config class); ``from_dict`` also accepts those already built.
    """

    nested: ClassVar[Mapping[str, type]] = {}
    # Integer MLP width field -> the width it was a multiple of, for configs saved with a float ``mlp_ratio``
    # (see :func:`upgrade_mlp_ratio`); e.g. ``{"mlp_hidden": "dim"}``.
    mlp_widths: ClassVar[Mapping[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | C) -> C:
        if isinstance(values, cls):
            return values
        if not isinstance(values, Mapping):
            raise ValueError(f"a {cls.__name__} needs a mapping of fields, got {type(values).__name__}")
        values = {k: v for k, v in values.items() if k != "kind"}
        if cls.mlp_widths:
            values = upgrade_mlp_ratio(values, cls.mlp_widths)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
        for name, sub in cls.nested.items():
            if name in values and not isinstance(values[name], sub):
                values[name] = sub.from_dict(values[name])  # type: ignore[attr-defined]
        return cls(**values)


def upgrade_mlp_ratio(values: Mapping[str, Any], widths: Mapping[str, str]) -> dict[str, Any]:
    """A saved model config from before MLP widths were integers -> today's fields.

    Old configs stored ``mlp_ratio`` (a float) and built ``int(dim * mlp_ratio)`` hidden units; ``widths`` maps
    each integer width field to the width it was a multiple of (``{"mlp_hidden": "dim"}``). The result builds
    exactly the model the old config built, so its checkpoint still loads.
    """
    values = dict(values)
    if "mlp_ratio" not in values:
        return values
    ratio = float(values.pop("mlp_ratio"))
    for name, dim_field in widths.items():
        if values.get(name) is None and dim_field in values:
            values[name] = int(values[dim_field] * ratio)
    return values


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def preset_config(cls: type[C], table: Mapping[str, Mapping[str, Any]], name: str, **overrides: Any) -> C:
    """``cls`` built from ``table[name]`` with ``overrides``; an unknown name is an error listing the known ones."""
    if name not in table:
        raise ValueError(f"unknown {cls.__name__} preset {name!r}; known: {', '.join(table)}")
    return cls.from_dict({**table[name], **overrides})


def saved_config(model: MaskedModel) -> dict[str, Any]:
    """What a run records as ``config.json["model"]``: ``{"kind": model.kind, **model.config.to_dict()}``
    (:func:`masklab.models.registry.build_model` rebuilds the model from it)."""
    return {"kind": model.kind, **model.config.to_dict()}
