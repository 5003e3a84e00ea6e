"""What both table estimators share: input checks, training, and safetensors save / load.

Both follow scikit-learn conventions (parameters stored unchanged in ``__init__``, fitted attributes end in
``_``, ``feature_names_in_`` / ``n_features_in_``). With an int ``random_state`` (a ``RandomState`` or None draws a
new seed each fit) fit and its outputs are bit-identical run to run on one machine, whose CPU kernels are
chosen by a timing measured once and cached; on another machine or with the cache cleared they may differ in
the last float digits unless ``MASKLAB_CPU_ATTENTION`` and ``MASKLAB_CPU_LINEAR`` pin the kernels. The
inference masks are fixed column patterns shared by all rows: a row's output never depends on the other rows
of its batch. :meth:`~_TableEstimator.save` writes a directory (safetensors + JSON, no pickle; all or nothing)
that :meth:`~_TableEstimator.load` reads; :meth:`~_TableEstimator.from_run` wraps a ``pretrain table`` run.

Input: a DataFrame (numeric and categorical columns; categorical ones are inferred or named in
``categorical``) or a numeric array; NaN / None / empty strings are missing cells. An estimator fitted on an
array takes a DataFrame's columns by position (scikit-learn warns that it was fitted without feature names).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from masklab.core.contract import preset_config, saved_config
from masklab.estimators import ESTIMATOR_FILE
from masklab.models.table import PRESETS as TABLE_PRESETS
from masklab.models.table import TableMAE, TableMAEConfig
from masklab.models.table.model import column_patterns
from masklab.tokenizers.table import (
    TableSchema,
    category_key,
    encode_frame,
    identifier_columns,
    infer_schema,
    missing_cells,
)
from masklab.train.in_memory import train_in_memory

FORMAT = "masklab.estimator/1"
WEIGHTS_FILE = "model.safetensors"
_HERE = os.path.dirname(__file__)  # masklab/estimators: warnings name the first line outside it


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the calling function that names the first line outside
    ``masklab.estimators`` (the user's call, however many of the estimators' methods lie between)."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.dirname(frame.f_code.co_filename) == _HERE:
        frame, level = frame.f_back, level + 1
    return level


@dataclass(frozen=True)
class Training:
    """How an estimator trains its model (the imputer exposes these as parameters, the detector fixes them).

    mask_ratio ± mask_ratio_jitter: the share of each row's observed cells hidden in training; weight_decay:
    AdamW's (5% warmup + cosine learning rate); dropout; validation_fraction: with early stopping, hold out
    that share of the observed cells and keep the weights that predict them best (checked 40 times per run).
    """

    mask_ratio: float = 0.5
    mask_ratio_jitter: float = 0.25
    weight_decay: float = 0.05
    dropout: float = 0.0
    early_stopping: bool = False
    validation_fraction: float = 0.1


class _TableEstimator(BaseEstimator):
    """Shared input handling, training, and save / load. Subclasses spell out their parameters in
    ``__init__`` (scikit-learn reads them from the signature); every subclass has ``preset``, ``steps``,
    ``batch_size``, ``lr``, ``categorical``, ``handle_unknown`` (``error`` | ``missing`` for categories unseen
    in training), ``random_state``, ``device`` and ``verbose``."""

    # Fitted state (scikit-learn's trailing underscore), set by fit / load / from_run.
    model_: TableMAE
    schema_: TableSchema
    n_steps_: int

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing cells are the point
        tags.input_tags.categorical = True  # via DataFrames with text / category columns
        return tags

    # ------------------------------------------------------------------------------------------ input
    def _frame(self, X, *, reset: bool):
        """Validate ``X`` (scikit-learn's feature-name / count checks) -> ``(DataFrame, was_a_frame)``."""
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            try:
                validate_data(self, X, skip_check_array=True, reset=reset)
            except ValueError as err:  # scikit-learn's words (its checks expect them), then the columns by name
                if reset or not hasattr(self, "feature_names_in_"):
                    raise
                given, fitted = [str(c) for c in X.columns], [str(n) for n in self.feature_names_in_]
                raise ValueError(f"{err}\n{_columns_hint(given, fitted)}") from None
            frame = X.copy(deep=False)
            # Fitted on an array: scikit-learn warned (above) and the columns are taken by position.
            named = reset or hasattr(self, "feature_names_in_")
            frame.columns = [str(c) for c in X.columns] if named else self.schema_.names
            return frame, True
        array = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan")
        names = self.schema_.names if not reset else [f"x{j}" for j in range(array.shape[1])]
        return pd.DataFrame(array, columns=names), False

    def _seed(self) -> int:
        """The training seed: ``random_state`` itself for an int; a draw from it for a ``RandomState`` (as
        ``sklearn.utils.check_random_state(random_state).randint(0, 2**31 - 1)``), from numpy's global one for
        None."""
        from sklearn.utils import check_random_state

        state = self.random_state
        if state is None or isinstance(state, np.random.RandomState):
            return int(check_random_state(state).randint(0, 2**31 - 1))
        if isinstance(state, (int, np.integer)) and not isinstance(state, bool) and 0 <= state < 2**32:
            return int(state)
        raise ValueError(f"random_state must be an int in [0, 2**32), a numpy RandomState or None, got {state!r}")

    def _check_params(self) -> None:
        """Refuse, naming the parameter, a ``steps`` that is not an int >= 1 (or None) and an unknown
        ``handle_unknown``, before any training."""
        steps = self.steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"steps must be an int >= 1 (optimizer steps) or None for the default, got {steps!r}")
        if self.handle_unknown not in ("error", "missing"):
            raise ValueError(f"handle_unknown must be 'error' or 'missing', got {self.handle_unknown!r}")

    def _encode(self, X):
        check_is_fitted(self)
        frame, was_frame = self._frame(X, reset=False)
        return frame, was_frame, encode_frame(frame, self.schema_, handle_unknown=self.handle_unknown)

    # --------------------------------------------------------------------------------------- training
    def _training(self) -> Training:
        """The training settings; the imputer reads them from its parameters."""
        return Training()

    def _default_steps(self, n_rows: int, batch_size: int) -> int:
        raise NotImplementedError

    def _fit_model(self, X, *, steps: int | None = None, initial: TableMAE | None = None) -> None:
        """Train ``model_`` on ``X``. ``initial``: continue from this model's weights (and keep its schema)
        instead of a fresh model; ``steps`` overrides the parameter."""
        from masklab.data.tables import HeldOutCells
        from masklab.train import TrainConfig

        training = self._training()
        frame, _ = self._frame(X, reset=initial is None)
        if initial is None:
            self.seed_ = self._seed()
            self.schema_ = infer_schema(frame, categorical=self.categorical or ())
            self.category_values_ = category_values(frame, self.schema_)
            ids = identifier_columns(frame)
            if ids:
                warnings.warn(f"column(s) {ids} look like row identifiers (every value distinct, none missing) and "
                              "are used as features; drop them from X", stacklevel=user_stacklevel())  # fmt: skip
        encoded = encode_frame(frame, self.schema_)
        held = None
        if training.early_stopping:
            held = HeldOutCells(encoded, training.validation_fraction, self.seed_)
            held = held if len(held) else None  # too few observed cells to hold any out
        batch = min(self.batch_size, len(encoded))
        if steps is None:
            steps = self._default_steps(len(encoded), batch) if self.steps is None else int(self.steps)
        config = preset_config(
            TableMAEConfig,
            TABLE_PRESETS,
            self.preset,
            schema=self.schema_,
            mask_ratio=training.mask_ratio,
            mask_ratio_jitter=training.mask_ratio_jitter,
            dropout=training.dropout,
        )
        train = TrainConfig(
            steps=steps,
            batch_size=batch,
            lr=self.lr,
            warmup_steps=steps // 20,
            weight_decay=training.weight_decay,
            log_every=max(1, steps // 10),
            ckpt_every=steps,
            seed=self.seed_,
            device=self.device,
            precision="fp32",
        )
        initial_state = None if initial is None else initial.state_dict()
        trained = train_in_memory(config, encoded, train, held=held, verbose=self.verbose, initial=initial_state)
        self.model_ = trained.model.eval()
        self.n_steps_ = trained.steps + (0 if initial is None else self.n_steps_)
        self.best_step_ = trained.best_step
        self.validation_loss_ = trained.validation_loss
        self.train_loss_ = trained.train_loss

    def _patterns(self, ratio: float) -> torch.Tensor:
        return column_patterns(len(self.schema_.columns), self.n_masks, ratio, self.seed_)

    # ---------------------------------------------------------------------------------- save / load
    def _fitted_state(self) -> dict:
        state: dict[str, Any] = {
            "seed_": self.seed_,
            "n_features_in_": int(self.n_features_in_),
            "n_steps_": self.n_steps_,
        }
        state.update(train_loss_=self.train_loss_, best_step_=self.best_step_, validation_loss_=self.validation_loss_)
        if hasattr(self, "category_values_"):  # {} too: load gives back exactly what fit set
            state["category_values_"] = self.category_values_
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(n) for n in self.feature_names_in_]
        return state

    def _restore_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, np.asarray(value, dtype=object) if key == "feature_names_in_" else value)

    def _extra_tensors(self) -> dict[str, torch.Tensor]:
        """Fitted tensors besides the weights, saved in ``model.safetensors`` (keys not starting ``model.``)."""
        return {}

    def _restore_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`_extra_tensors` saved (``tensors``: the whole file)."""

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to directory ``path``: ``model.safetensors`` (weights, integrity hash)
        and ``estimator.json`` (class, parameters, schema, fitted attributes, the weights' hash). No pickle. All
        or nothing: a failure (a parameter JSON cannot hold, a full disk) leaves ``path`` as it was. Numpy
        scalars are saved as Python numbers, a ``RandomState`` ``random_state`` as None (``seed_`` is kept)."""
        from masklab.core.io import atomic_write_bytes, save_checkpoint, tensors_sha256

        check_is_fitted(self)
        tensors = {f"model.{k}": v.detach().to("cpu", copy=True) for k, v in self.model_.state_dict().items()}
        tensors.update(self._extra_tensors())
        params = {k: None if isinstance(v, np.random.RandomState) else v for k, v in self.get_params().items()}
        for name, value in params.items():
            try:
                json.dumps(value, default=_json_scalar)
            except (TypeError, ValueError) as err:
                raise ValueError(f"cannot save: parameter {name}={value!r} is not JSON ({err})") from None
        meta = {"format": FORMAT, "class": type(self).__name__, "params": params, "model": saved_config(self.model_),
                "fitted": self._fitted_state(), "weights_sha256": tensors_sha256(tensors)}  # fmt: skip
        text = json.dumps(meta, indent=2, default=_json_scalar) + "\n"

        def write(folder: Path) -> None:
            save_checkpoint(folder / WEIGHTS_FILE, tensors, {"format": FORMAT})
            atomic_write_bytes(folder / ESTIMATOR_FILE, text.encode("utf-8"))

        _write_folder(Path(path), write)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path):
        """Rebuild an estimator saved by :meth:`save` (raises for a file of another class or format)."""
        from masklab.core.io import HASH_KEY, load_checkpoint
        from masklab.models.registry import build_model

        path = Path(path)
        meta_path = path / ESTIMATOR_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} is not a saved masklab estimator: {meta_path} does not exist")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
        if meta.get("format") != FORMAT or meta.get("class") != cls.__name__:
            raise ValueError(f"{meta_path} holds a {meta.get('class')!r} ({meta.get('format')}), not a {cls.__name__}")
        known = cls._get_param_names()
        unknown = sorted(set(meta["params"]) - set(known))
        if unknown:
            raise ValueError(f"{meta_path}: parameters {unknown} are not {cls.__name__} parameters (saved by another "
                             "version)")  # fmt: skip
        estimator = cls(**meta["params"])
        estimator._restore_state(meta["fitted"])
        tensors, info = load_checkpoint(path / WEIGHTS_FILE)
        recorded = meta.get("weights_sha256")  # absent in folders saved before it was recorded
        if recorded is not None and info.get(HASH_KEY) != recorded:
            raise ValueError(f"{path}: {WEIGHTS_FILE} and {ESTIMATOR_FILE} do not belong together (the weights' "
                             f"sha256 {str(info.get(HASH_KEY))[:12]}... is not the {recorded[:12]}... the JSON "
                             "records: an interrupted save or a copied file); save the estimator again")  # fmt: skip
        estimator._set_model(_table_model(build_model({"kind": meta["model"]["kind"], "model": meta["model"]})),
                             tensors)  # fmt: skip
        estimator._restore_tensors(tensors)
        return estimator

    @classmethod
    def from_run(cls, run_dir: str | Path, **params):
        """Wrap a ``masklab pretrain table`` run directory; ``params`` as in the constructor."""
        from masklab.models.registry import build_model
        from masklab.train.checkpoint import load_run

        run = load_run(run_dir)
        if run.config["kind"] != TableMAE.kind:
            raise ValueError(f"{run_dir} is a {run.config['kind']!r} run, not a table run (pretrain table)")
        estimator = cls(**params)
        model = _table_model(build_model(run.config))
        names = model.config.schema.names
        # The inference masks follow random_state; None falls back to the run's training seed (reproducible).
        seed = int(run.config.get("train", {}).get("seed", 0)) if estimator.random_state is None else None
        estimator._restore_state({"seed_": estimator._seed() if seed is None else seed, "n_features_in_": len(names),
                                  "feature_names_in_": names, "n_steps_": run.step, "best_step_": run.step,
                                  "validation_loss_": None, "train_loss_": float("nan")})  # fmt: skip
        estimator._set_model(model, {f"model.{k}": v for k, v in run.model_state.items()})
        return estimator

    def _set_model(self, model: TableMAE, tensors: dict[str, torch.Tensor]) -> None:
        state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(state)
        from masklab.core.device import resolve_device

        self.model_ = model.to(resolve_device(self.device)).eval()
        self.schema_ = model.config.schema


def category_values(frame, schema: TableSchema) -> dict[str, list]:
    """Per categorical column whose training values were not text: the value each category stood for
    (``spec.categories`` are strings), aligned with the categories; a bool, int or finite float (what JSON
    holds exactly), None where the category's string is the value (text, or a type JSON cannot hold)."""
    found: dict[str, list] = {}
    for spec, (_, column) in zip(schema.columns, frame.items(), strict=True):
        if spec.kind != "categorical":
            continue
        values: dict[str, object] = {}
        for value in column[~missing_cells(column)].tolist():
            values.setdefault(category_key(value), _json_value(value))
        recorded = [values.get(key) for key in spec.categories]
        if any(v is not None for v in recorded):
            found[spec.name] = recorded
    return found


def _json_scalar(value: object) -> object:
    """``json.dumps``'s ``default``: a numpy number as the equal Python one (GridSearchCV sets those)."""
    if isinstance(value, (np.number, np.bool_)):
        return value.item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _write_folder(path: Path, write) -> None:
    """Call ``write(tmp)`` on a new hidden sibling of ``path``, then put its files in ``path``: a new folder in
    one rename, an earlier save (nothing else there) swapped out in one atomic exchange (Linux); else the files
    one by one, the JSON last (a crash between them leaves a mix :meth:`~_TableEstimator.load` refuses). The
    sibling names its writer: what a writer killed on this host left is removed by the next save here."""
    import shutil

    from masklab.core.io import exchange_paths, new_staging_folder

    target = Path(os.path.realpath(path))  # a file there: iterdir's NotADirectoryError, after tmp is removed
    tmp = new_staging_folder(target)
    try:
        write(tmp)
        if not target.exists():
            os.rename(tmp, target)
            return
        names, present = sorted(p.name for p in tmp.iterdir()), {p.name for p in target.iterdir()}
        if present and present <= set(names):
            os.chmod(tmp, os.stat(target).st_mode & 0o7777)
            if exchange_paths(tmp, target):  # tmp now holds the earlier save, removed below
                return
        for name in sorted(names, key=lambda name: name == ESTIMATOR_FILE):
            os.replace(tmp / name, target / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _json_value(value: object) -> bool | int | float | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and np.isfinite(value):
        return float(value)
    return None


def _columns_hint(given: list[str], fitted: list[str]) -> str:
    """What to do when a DataFrame's columns differ from those seen in fit, naming them."""
    unknown = [c for c in given if c not in fitted]
    absent = [c for c in fitted if c not in given]
    if unknown or absent:
        return f"X's columns differ from those seen in fit: unknown {unknown}, missing {absent}; expected {fitted}"
    return (f"X has the columns seen in fit in another order: {given}; expected {fitted} (reorder with "
            "X[estimator.feature_names_in_])")  # fmt: skip


def _table_model(model: torch.nn.Module) -> TableMAE:
    if not isinstance(model, TableMAE):
        raise ValueError(f"expected a table model, got a {type(model).__name__}")
    return model
