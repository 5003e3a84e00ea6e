"""MaskedImputer: fill missing cells with a masked autoencoder trained on the observed ones (ReMasker)."""

from __future__ import annotations

from typing import Any

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
    columns whose training values were all whole numbers get whole numbers and come back int64 (``Int64`` if
    nullable) in every batch; other numeric columns keep their float dtype. An array comes back as floats,
    unrounded (as scikit-learn's imputers return it: the least-squares fill of a 0/1 column is a share, not a
    0 or 1); a bool array as bools. Usable in a scikit-learn ``Pipeline``.

    preset: ``table-tiny`` | ``table-small``; steps: optimizer steps (None = :func:`~masklab.estimators.
    budget.auto_steps`); batch_size, lr, weight_decay: AdamW with 5% warmup + cosine; mask_ratio ±
    mask_ratio_jitter: the share of each row's observed cells hidden in training; dropout; early_stopping /
    validation_fraction: hold out that share of the observed cells and keep the weights that predict them
    best; categorical: columns to force categorical; handle_unknown: ``error`` | ``missing`` for categories
    unseen in training; random_state: int seed, a numpy ``RandomState`` to draw it from, or None (fresh);
    device: ``cpu`` | ``cuda`` | ``auto``; verbose: print training progress.
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
        """Train the model on the observed cells of ``X``.

        X: DataFrame ``(N, C)`` (numeric and categorical columns; dates, times and durations are refused) or
        numeric / bool array ``(N, C)``; missing cells are NaN / None / NA / empty strings. y: ignored.
        Returns ``self`` (fitted: ``model_``, ``schema_``, ``seed_``, ``n_steps_``, ...)."""
        self._check_params()
        self._fit_model(X)
        return self

    def transform(self, X):
        """Fill the missing cells of ``X`` (the columns seen in fit, by name for a DataFrame).

        Returns a copy of ``X`` in which only the missing cells changed. A DataFrame ``(N, C)``: each
        column's dtype is a function of its fitted column only, the same for every batch: a column whose
        training values were all whole numbers comes back int64 (nullable ``Int64`` if the input was a
        nullable dtype; an integer dtype stays as it is), with float64 only when the batch's own observed
        cells are not whole numbers; another numeric column keeps its float dtype (float32 stays float32,
        ``Float64`` stays ``Float64``; else float64); categorical columns get their own values (class doc).
        An array ``(N, C)``: float64 with unrounded fills; a bool array (which holds no missing cell) comes
        back as an equal bool array."""
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
            if all(pd.api.types.is_bool_dtype(dtype) for dtype in frame.dtypes):
                return frame.to_numpy(dtype=bool, copy=True)
            out = frame.to_numpy(dtype=np.float64, copy=True)
            fill = np.isnan(out)
            out[fill] = np.column_stack([_numbers(decoded[n]) for n in self.schema_.names])[fill]
            return out
        out = X.copy()
        recorded = getattr(self, "category_values_", None) or {}
        for column, spec in zip(X.columns, self.schema_.columns, strict=True):
            fill = missing_cells(out[column])  # truly empty cells only (not unseen categories)
            if spec.kind == "numeric":
                out[column] = _numeric_fill(out[column], fill, decoded[spec.name], spec.name, spec.integer).values
                continue
            if not fill.any():
                continue
            filled = decoded[spec.name][fill]
            dtype = out[column].dtype
            numeric_column = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            if numeric_column and ((~fill).any() or _are_numbers(spec.categories)):  # an empty column reads as float
                values = out[column].to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
                values[fill] = _numbers(filled)
                out[column] = pd.Series(values, index=out.index).astype(dtype).values  # the fills in its dtype
                continue
            filled = _own_values(filled, out[column], ~fill, spec.categories, recorded.get(spec.name))
            values = out[column].astype(object)
            values[fill] = filled
            out[column] = values.astype(dtype) if _fits(dtype, filled) else values
        return out


def _numbers(keys: np.ndarray) -> np.ndarray:
    """float64 (N,) of predicted values: numbers as they are, category strings read as numbers (bools 0 / 1)."""
    if keys.dtype != object:
        return keys.astype(np.float64)
    return np.array([float({"True": 1, "False": 0}.get(k, k)) for k in keys], dtype=np.float64)


def _are_numbers(categories) -> bool:
    """Whether every category reads as a number (``"3"``, ``"True"``): their fills may go into a numeric column."""
    try:
        _numbers(np.asarray(list(categories), dtype=object))
    except ValueError:
        return False
    return True


def _numeric_fill(column, fill: np.ndarray, predicted: np.ndarray, name: str, integer: bool):
    """A numeric ``column`` (Series) with ``predicted`` float64 (N,) values written where ``fill``, in the
    dtype of the fitted column: whole numbers (``integer``) as int64, or ``Int64`` for a nullable input (an
    integer dtype is kept: its observed cells stay exact), float64 when the observed cells are not whole;
    else the column's float dtype (float32, ``Float64``), float64 for others (``Float64`` if nullable)."""
    import pandas as pd

    from masklab.tokenizers.table import parse_numeric

    dtype = column.dtype
    nullable = isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype)
    if integer and pd.api.types.is_integer_dtype(dtype):
        out = column.copy()
        if fill.any():
            out[fill] = predicted[fill].astype(np.int64)
        return out
    values = parse_numeric(column, name)  # float64 (N,), NaN where missing
    values[fill] = predicted[fill]
    target: Any
    if integer and bool(np.all(values == np.round(values))):
        target = "Int64" if nullable else np.int64
    elif pd.api.types.is_float_dtype(dtype):
        target = dtype
    else:
        target = "Float64" if nullable else np.float64
    return pd.Series(values, index=column.index).astype(target)


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
    elif observed.any():
        return keys  # text
    else:  # nothing observed (a column read as numbers because it is empty): the values recorded in fit
        own = {}
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
