"""MaskedImputer: fill missing cells with a masked autoencoder trained on the observed ones (ReMasker)."""

from __future__ import annotations

import numpy as np
from sklearn.base import OneToOneFeatureMixin, TransformerMixin

from masklab.estimators.base import Training, _TableEstimator
from masklab.estimators.budget import auto_steps
from masklab.models.table.model import impute_cells
from masklab.tokenizers.table import category_key, decode_columns


class MaskedImputer(OneToOneFeatureMixin, TransformerMixin, _TableEstimator):
    """Fill missing cells with a masked autoencoder trained on the observed ones (ReMasker, Du et al. 2023).

    ``transform`` returns a copy of ``X`` (a DataFrame for a DataFrame, else a float array) in which only the
    missing cells changed: each is the model's prediction from its row's observed cells (categorical cells:
    the most likely category, as the column's own value: a bool for bools, an int for an object column of ints;
    a Categorical, string or boolean column keeps its dtype when the fills fit it). A DataFrame's numeric
    columns whose training values were all whole numbers get whole numbers, and a float column of them comes
    back as int64 once no cell is missing; an array
    comes back as floats, unrounded (as scikit-learn's imputers return it: the least-squares fill of a 0/1
    column is a share, not a 0 or 1). Usable in a scikit-learn ``Pipeline``.

    preset: ``table-tiny`` | ``table-small``; steps: optimizer steps (None = :func:`~masklab.estimators.
    budget.auto_steps`); batch_size, lr, weight_decay: AdamW with 5% warmup + cosine; mask_ratio ±
    mask_ratio_jitter: the share of each row's observed cells hidden in training; dropout; early_stopping /
    validation_fraction: hold out that share of the observed cells and keep the weights that predict them
    best; categorical: columns to force categorical; handle_unknown: ``error`` | ``missing`` for categories
    unseen in training; random_state: int seed (None = fresh); device: ``cpu`` | ``cuda`` | ``auto``;
    verbose: print training progress.
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
        mask_ratio_jitter: float = 0.25,
        dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
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
        self.mask_ratio_jitter = mask_ratio_jitter
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.categorical = categorical
        self.handle_unknown = handle_unknown
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _training(self) -> Training:
        return Training(
            mask_ratio=self.mask_ratio,
            mask_ratio_jitter=self.mask_ratio_jitter,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction,
        )

    def _default_steps(self, n_rows: int, batch_size: int) -> int:
        return auto_steps(n_rows, batch_size)

    def fit(self, X, y=None):
        self._fit_model(X)
        return self

    def transform(self, X):
        import pandas as pd
        import torch

        from masklab.tokenizers.table import missing_cells

        frame, was_frame, encoded = self._encode(X)
        no_patterns = torch.zeros(0, len(self.schema_.columns), dtype=torch.bool)
        numeric, categories = impute_cells(
            self.model_, encoded.values, encoded.categories, encoded.missing, no_patterns
        )
        decoded = decode_columns(numeric, categories, self.schema_, round_integers=was_frame)
        if not was_frame:
            out = frame.to_numpy(dtype=np.float64, copy=True)
            fill = np.isnan(out)
            out[fill] = np.column_stack([decoded[n] for n in self.schema_.names]).astype(np.float64)[fill]
            return out
        out = X.copy()
        recorded = getattr(self, "category_values_", None) or {}
        for column, spec in zip(X.columns, self.schema_.columns, strict=True):
            fill = missing_cells(out[column])  # truly empty cells only (not unseen categories)
            if not fill.any():
                continue
            filled = decoded[spec.name][fill]
            dtype = out[column].dtype
            numbers = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            if spec.kind == "categorical" and numbers:
                filled = filled.astype(np.float64)
            elif spec.kind == "categorical":
                filled = _own_values(filled, out[column], ~fill, spec.categories, recorded.get(spec.name))
                values = out[column].astype(object)
                values[fill] = filled
                out[column] = values.astype(dtype) if _fits(dtype, filled) else values
                continue
            if not pd.api.types.is_float_dtype(dtype) and spec.kind == "numeric":
                out[column] = out[column].astype(np.float64)
            out.loc[fill, column] = filled
            values = out[column]
            if spec.integer and pd.api.types.is_float_dtype(values.dtype) and (values == values.round()).all():
                out[column] = values.astype(np.int64)  # a column of whole numbers is float only for its NaN
        return out


def _own_values(keys: np.ndarray, column, observed: np.ndarray, categories, recorded: list | None) -> np.ndarray:
    """Predicted category strings -> the column's own values: a bool column gets bools, a Categorical its
    categories, an object column the value of that category among its observed cells, else the one recorded
    in fit (ints, bools), else the category read as the type of the column's observed values (bools, ints),
    else the string; a text column keeps the strings."""
    import pandas as pd

    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return np.array([{"True": True, "False": False}.get(k, k) for k in keys], dtype=object)
    if isinstance(dtype, pd.CategoricalDtype):
        own = {category_key(c): c for c in dtype.categories}
    elif pd.api.types.is_object_dtype(dtype):
        own = {}
        for value in column[observed].tolist():
            if not isinstance(value, str):
                own.setdefault(category_key(value), value.item() if isinstance(value, np.generic) else value)
    else:
        return keys  # text
    saved = {k: v for k, v in zip(categories, recorded or (), strict=False) if v is not None}
    kinds = {type(v) for v in own.values()}  # a category the column does not show: read as its values' type
    if kinds == {bool}:
        saved = {"True": True, "False": False, **saved}
    elif kinds == {int}:
        saved = {**{k: int(k) for k in categories if k.lstrip("-").isdigit()}, **saved}
    return np.array([own.get(k, saved.get(k, k)) for k in keys], dtype=object)


def _fits(dtype, filled: np.ndarray) -> bool:
    """Whether ``filled`` can go back into a column of ``dtype`` (object always; else the values' kind)."""
    import pandas as pd

    if isinstance(dtype, pd.CategoricalDtype):
        return bool((pd.Index(dtype.categories).get_indexer(pd.Index(filled, dtype=object)) >= 0).all())
    if pd.api.types.is_bool_dtype(dtype):
        return all(isinstance(v, (bool, np.bool_)) for v in filled)
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return all(isinstance(v, str) for v in filled)
    return pd.api.types.is_object_dtype(dtype)
