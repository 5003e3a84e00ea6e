"""Train a :class:`~masklab.models.table.TableMAE` in memory (a temporary run directory) for the estimators."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from masklab.core.contract import saved_config
from masklab.models.table.model import TableMAE, TableMAEConfig


@dataclass(frozen=True)
class TrainedTable:
    model: TableMAE
    steps: int  # optimizer steps run
    best_step: int  # step whose weights were kept (the last one without held-out cells)
    validation_loss: float | None  # held-out cell loss at best_step
    train_loss: float  # last logged training loss


def train_in_memory(
    config: TableMAEConfig, encoded, train, *, held=None, verbose: bool = False, initial: dict | None = None
) -> TrainedTable:
    """Build a :class:`TableMAE` (seeded with ``train.seed``) and train it with :func:`masklab.train.fit` in a
    temporary run directory, for estimators that keep the model in memory.

    ``encoded``: the :class:`~masklab.tokenizers.table.EncodedTable`; ``train``: a ``TrainConfig``; ``held``:
    optional :class:`~masklab.data.tables.HeldOutCells`, which then replaces ``encoded`` for training and is
    checked 40 times: the weights with the lowest held-out loss are kept (early stopping without stopping:
    the schedule runs to its end); ``initial``: a state dict to start from instead of fresh weights. torch's
    global RNG is left as it was (``fit`` seeds it).
    """
    import contextlib
    import copy
    import io
    import tempfile

    from masklab.data.tables import TableTrainData
    from masklab.train.loop import fit

    best = {"loss": math.inf, "step": train.steps, "state": None}
    check_every = max(1, train.steps // 40)

    def keep_best(step: int, values: dict) -> None:
        if held is None or (step % check_every and step != train.steps):
            return
        loss = held.loss(model)
        if loss < best["loss"]:
            best.update(loss=loss, step=step, state=copy.deepcopy(model.state_dict()))

    with torch.random.fork_rng(devices=[]), tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(train.seed)
        model = TableMAE(config)
        if initial is not None:
            model.load_state_dict(initial)
        data = TableTrainData(encoded if held is None else held.train)
        quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stderr(io.StringIO())
        with quiet:
            try:
                result = fit(model, data, train, tmp, model_config=saved_config(model), progress=False,
                             on_step=keep_best, resumable=False)  # fmt: skip
            except KeyboardInterrupt:  # the temporary run goes with it: nothing to resume
                raise KeyboardInterrupt("training interrupted (Ctrl-C); the estimator is not fitted") from None
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    loss = float(result.last_metrics.get("loss", math.nan))
    return TrainedTable(model, result.step, best["step"], best["loss"] if held is not None else None, loss)
