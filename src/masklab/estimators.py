"""scikit-learn estimators on :class:`masklab.models.tabular.TableMAE`: imputation and anomaly scoring.

- :class:`MaskedImputer` (``fit`` / ``transform`` / ``fit_transform``; usable in a ``Pipeline``) fills the
  missing cells with the model's predictions and leaves every observed cell untouched.
- :class:`MaskedAnomalyDetector` (``fit`` / ``score_samples`` / ``decision_function`` / ``predict``) scores a
  row by its reconstruction error under repeated masking: each observed cell is hidden ``n_masks`` times
  (in random column groups) and predicted from the rest of its row. High error = unusual row.

Both follow scikit-learn conventions (parameters stored unchanged in ``__init__``, fitted attributes end in
``_``, ``feature_names_in_`` / ``n_features_in_``) and are deterministic for a fixed ``random_state``: the
inference masks are a fixed set of column patterns shared by all rows, so a row's output never depends on
which other rows are in the batch. Fitted estimators save to a directory with :meth:`save` (safetensors +
JSON, no pickle) and come back with :meth:`load`; :meth:`from_run` wraps a ``masklab pretrain table`` run.

Input: a DataFrame (numeric and categorical columns; categorical ones are inferred or named in
``categorical``) or a numeric array; NaN / None / empty strings are missing cells.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, OutlierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from masklab.data.tables import TableTrainData
from masklab.models.tabular import TableMAE, TableMAEConfig, column_patterns, impute_cells, reconstruction_errors
from masklab.tokenizers.table import TableSchema, decode_columns, encode_frame, infer_schema

FORMAT = "masklab.estimator/1"


# ------------------------------------------------------------------------------------------- estimators
def auto_steps(n_rows: int, batch_size: int) -> int:
    """Default training length: about 400 epochs, clipped to [1000, 4000] steps. Masking makes every epoch a
    new problem, so small tables need many epochs (ReMasker trains 600); large ones saturate sooner."""
    return int(min(4000, max(1000, math.ceil(400 * n_rows / batch_size))))


class _TableEstimator(BaseEstimator):
    """Shared input handling, training, and safetensors save/load. Subclasses spell out their parameters
    in ``__init__`` (scikit-learn reads them from the signature): preset, steps (None = :func:`auto_steps`),
    batch_size, lr, weight_decay, mask_ratio, dropout, n_masks, categorical, handle_unknown, random_state,
    device, verbose."""

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
            validate_data(self, X, skip_check_array=True, reset=reset)
            frame = X.copy(deep=False)
            frame.columns = [str(c) for c in X.columns]
            return frame, True
        array = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan")
        names = self.schema_.names if not reset else [f"x{j}" for j in range(array.shape[1])]
        return pd.DataFrame(array, columns=names), False

    def _seed(self) -> int:
        if self.random_state is None:
            return int(np.random.randint(0, 2**31 - 1))
        if isinstance(self.random_state, (int, np.integer)) and 0 <= self.random_state < 2**32:
            return int(self.random_state)
        raise ValueError(f"random_state must be an int in [0, 2**32) or None, got {self.random_state!r}")

    def _encode(self, X):
        check_is_fitted(self)
        frame, was_frame = self._frame(X, reset=False)
        return frame, was_frame, encode_frame(frame, self.schema_, handle_unknown=self.handle_unknown)

    # --------------------------------------------------------------------------------------- training
    def _fit_model(self, X) -> None:
        from masklab.train import TrainConfig, fit

        frame, _ = self._frame(X, reset=True)
        self.seed_ = self._seed()
        self.schema_ = infer_schema(frame, categorical=self.categorical or ())
        encoded = encode_frame(frame, self.schema_)
        batch = min(self.batch_size, len(encoded))
        steps = auto_steps(len(encoded), batch) if self.steps is None else int(self.steps)
        config = TableMAEConfig.preset(self.preset, self.schema_, mask_ratio=self.mask_ratio, dropout=self.dropout)
        train = TrainConfig(
            steps=steps,
            batch_size=batch,
            lr=self.lr,
            warmup_steps=steps // 20,
            weight_decay=self.weight_decay,
            log_every=max(1, steps // 10),
            ckpt_every=steps,
            seed=self.seed_,
            device=self.device,
            precision="fp32",
        )
        # fork_rng: fit() seeds torch's global RNG; an estimator must not change the caller's.
        with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(self.seed_)
            model = TableMAE(config)
            quiet = contextlib.nullcontext() if self.verbose else contextlib.redirect_stderr(io.StringIO())
            with quiet:
                result = fit(
                    model, TableTrainData(encoded), train, tmp, model_config=model.model_config(), progress=False
                )
        self.model_ = model.eval()
        self.n_steps_ = result.step
        self.train_loss_ = float(result.last_metrics.get("loss", float("nan")))

    def _patterns(self, ratio: float) -> torch.Tensor:
        return column_patterns(len(self.schema_.columns), self.n_masks, ratio, self.seed_)

    # ---------------------------------------------------------------------------------- save / load
    def _fitted_state(self) -> dict:
        state = {"seed_": self.seed_, "n_features_in_": int(self.n_features_in_), "n_steps_": self.n_steps_}
        state["train_loss_"] = self.train_loss_
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(n) for n in self.feature_names_in_]
        return state

    def _restore_state(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, np.asarray(value, dtype=object) if key == "feature_names_in_" else value)

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to directory ``path``: ``model.safetensors`` (weights, integrity hash)
        and ``estimator.json`` (class, parameters, schema, fitted attributes). No pickle."""
        from masklab.train.checkpoint import atomic_write_json, save_checkpoint

        check_is_fitted(self)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"model.{k}": v.detach().to("cpu", copy=True) for k, v in self.model_.state_dict().items()}
        save_checkpoint(path / "model.safetensors", tensors, {"format": FORMAT})
        atomic_write_json(
            path / "estimator.json",
            {
                "format": FORMAT,
                "class": type(self).__name__,
                "params": self.get_params(),
                "model": self.model_.model_config(),
                "fitted": self._fitted_state(),
            },
        )
        return path

    @classmethod
    def load(cls, path: str | Path):
        """Rebuild an estimator saved by :meth:`save` (raises for a file of another class or format)."""
        from masklab.models.registry import build_model
        from masklab.train.checkpoint import load_checkpoint

        path = Path(path)
        meta_path = path / "estimator.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{path} is not a saved masklab estimator: {meta_path} does not exist")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
        if meta.get("format") != FORMAT or meta.get("class") != cls.__name__:
            raise ValueError(f"{meta_path} holds a {meta.get('class')!r} ({meta.get('format')}), not a {cls.__name__}")
        estimator = cls(**meta["params"])
        estimator._restore_state(meta["fitted"])
        tensors, _ = load_checkpoint(path / "model.safetensors")
        estimator._set_model(build_model({"kind": meta["model"]["kind"], "model": meta["model"]}), tensors)
        return estimator

    @classmethod
    def from_run(cls, run_dir: str | Path, **params):
        """Wrap a ``masklab pretrain table`` run directory; ``params`` as in the constructor."""
        from masklab.models.registry import build_model
        from masklab.train.checkpoint import load_run

        run = load_run(run_dir)
        if run.config["kind"] != TableMAE.kind:
            raise ValueError(f"{run_dir} is a {run.config['kind']!r} run, not a {TableMAE.kind!r} (table) run")
        estimator = cls(**params)
        model = build_model(run.config)
        names = model.config.schema.names
        seed = int(run.config.get("train", {}).get("seed", 0)) if estimator.random_state is None else None
        estimator._restore_state(
            {
                "seed_": estimator._seed() if seed is None else seed,
                "n_features_in_": len(names),
                "feature_names_in_": names,
                "n_steps_": run.step,
                "train_loss_": float("nan"),
            }
        )
        estimator._set_model(model, {f"model.{k}": v for k, v in run.model_state.items()})
        return estimator

    def _set_model(self, model: TableMAE, tensors: dict[str, torch.Tensor]) -> None:
        state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(state)
        self.model_ = model.to(self.device if self.device != "auto" else "cpu").eval()
        self.schema_: TableSchema = model.config.schema


class MaskedImputer(OneToOneFeatureMixin, TransformerMixin, _TableEstimator):
    """Fill missing cells with a masked autoencoder trained on the observed ones (ReMasker).

    ``transform`` returns a copy of ``X`` (a DataFrame for a DataFrame, else a float array) in which only the
    missing cells changed. Each missing cell is the average prediction from its observed cells and from
    ``n_masks`` rounds of column groups that additionally hide ``ensemble_ratio`` of them (a test-time
    ensemble; ``n_masks=0`` uses the plain prediction only). Categorical cells take the most likely category.
    """

    def __init__(
        self,
        preset: str = "table-small",
        *,
        steps: int | None = None,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        mask_ratio: float = 0.25,
        dropout: float = 0.0,
        n_masks: int = 0,
        ensemble_ratio: float = 0.25,
        categorical: list[str] | None = None,
        handle_unknown: str = "error",
        random_state: int | None = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.mask_ratio = mask_ratio
        self.dropout = dropout
        self.n_masks = n_masks
        self.ensemble_ratio = ensemble_ratio
        self.categorical = categorical
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        self._fit_model(X)
        return self

    def transform(self, X):
        import pandas as pd

        from masklab.tokenizers.table import missing_cells

        frame, was_frame, encoded = self._encode(X)
        patterns = self._patterns(self.ensemble_ratio) if self.n_masks else torch.zeros(0, len(self.schema_.columns))
        numeric, categories = impute_cells(self.model_, encoded.values, encoded.categories, encoded.missing, patterns)
        decoded = decode_columns(numeric, categories, self.schema_)
        if not was_frame:
            out = frame.to_numpy(dtype=np.float64, copy=True)
            fill = np.isnan(out)
            out[fill] = np.column_stack([decoded[n] for n in self.schema_.names]).astype(np.float64)[fill]
            return out
        out = X.copy()
        for column, spec in zip(X.columns, self.schema_.columns, strict=True):
            fill = missing_cells(out[column])  # truly empty cells only (not unseen categories)
            if not fill.any():
                continue
            filled = decoded[spec.name][fill]
            if spec.kind == "categorical" and pd.api.types.is_numeric_dtype(out[column].dtype):
                filled = filled.astype(np.float64)
            if not pd.api.types.is_float_dtype(out[column].dtype) and spec.kind == "numeric":
                out[column] = out[column].astype(np.float64)
            elif spec.kind == "categorical" and not pd.api.types.is_numeric_dtype(out[column].dtype):
                out[column] = out[column].astype(object)
            out.loc[fill, column] = filled
        return out


class MaskedAnomalyDetector(OutlierMixin, _TableEstimator):
    """Unsupervised anomaly scores from masked reconstruction (how surprising is each cell given its row?).

    ``anomaly_score(X)`` (higher = more anomalous) is the mean over a row's observed cells of the cell's
    reconstruction error, each cell hidden in ``n_masks`` rounds of random column groups of ``score_ratio``
    of the columns. scikit-learn's convention is the opposite sign: ``score_samples = -anomaly_score``
    (lower = more abnormal), ``decision_function = score_samples - offset_`` (negative = outlier) and
    ``predict`` gives -1 for outliers, 1 for inliers. The threshold ``threshold_`` is ``threshold`` when
    given, else the ``1 - contamination`` quantile of the training scores.
    """

    def __init__(
        self,
        preset: str = "table-small",
        *,
        steps: int | None = None,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        mask_ratio: float = 0.5,
        dropout: float = 0.0,
        n_masks: int = 4,
        score_ratio: float = 0.5,
        contamination: float = 0.1,
        threshold: float | None = None,
        categorical: list[str] | None = None,
        handle_unknown: str = "error",
        random_state: int | None = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.mask_ratio = mask_ratio
        self.dropout = dropout
        self.n_masks = n_masks
        self.score_ratio = score_ratio
        self.contamination = contamination
        self.threshold = threshold
        self.categorical = categorical
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def fit(self, X, y=None):
        if not (isinstance(self.n_masks, (int, np.integer)) and self.n_masks >= 1):
            raise ValueError(f"n_masks must be an int >= 1 for anomaly scores, got {self.n_masks!r}")
        if self.threshold is None and not 0.0 < self.contamination <= 0.5:
            raise ValueError(f"contamination must be in (0, 0.5], got {self.contamination!r}")
        self._fit_model(X)
        self._set_threshold(self.anomaly_score(X))
        return self

    def _set_threshold(self, training_scores: np.ndarray) -> None:
        if self.threshold is not None:
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(np.quantile(training_scores, 1.0 - self.contamination))
        self.offset_ = -self.threshold_

    def _fitted_state(self) -> dict:
        return {**super()._fitted_state(), "threshold_": self.threshold_, "offset_": self.offset_}

    @classmethod
    def from_run(cls, run_dir: str | Path, **params):
        """Wrap a ``masklab pretrain table`` run. Without training scores there is no contamination
        quantile: ``threshold_`` is ``threshold`` (default: inf, nothing flagged until one is given)."""
        estimator = super().from_run(run_dir, **params)
        estimator.threshold_ = math.inf if estimator.threshold is None else float(estimator.threshold)
        estimator.offset_ = -estimator.threshold_
        return estimator

    def anomaly_score(self, X) -> np.ndarray:
        """Reconstruction error per row ``(N,)``; higher = more anomalous."""
        _, _, encoded = self._encode(X)
        patterns = self._patterns(self.score_ratio)
        scores = reconstruction_errors(self.model_, encoded.values, encoded.categories, encoded.missing, patterns)
        return scores.numpy()

    def score_samples(self, X) -> np.ndarray:
        """``-anomaly_score(X)``: scikit-learn's sign (the lower, the more abnormal)."""
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for outliers (anomaly score above ``threshold_``), 1 for inliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)
