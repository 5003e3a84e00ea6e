"""MaskedImputer: fill missing cells with a masked autoencoder trained on the observed ones (ReMasker)."""

from __future__ import annotations

import numpy as np
from sklearn.base import OneToOneFeatureMixin, TransformerMixin

from masklab.estimators.base import Training, _TableEstimator
from masklab.estimators.budget import auto_steps
from masklab.models.table.model import impute_cells
from masklab.tokenizers.table import decode_columns


class MaskedImputer(OneToOneFeatureMixin, TransformerMixin, _TableEstimator):
    """Fill missing cells with a masked autoencoder trained on the observed ones (ReMasker, Du et al. 2023).

    ``transform`` returns a copy of ``X`` (a DataFrame for a DataFrame, else a float array) in which only the
    missing cells changed: each is the model's prediction from its row's observed cells (categorical cells:
    the most likely category). A DataFrame's numeric columns whose training values were all whole numbers
    get whole numbers, and a float column of them comes back as int64 once no cell is missing; an array
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
            values = out[column]
            if spec.integer and pd.api.types.is_float_dtype(values.dtype) and (values == values.round()).all():
                out[column] = values.astype(np.int64)  # a column of whole numbers is float only for its NaN
        return out
