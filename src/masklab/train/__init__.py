"""masklab.train: the one training loop every model reuses, its optimizer and its run directories.

A model is trainable when it is an ``nn.Module`` with ``training_loss(batch, generator) -> LossOutput``
(:mod:`masklab.core.contract`); data when it has ``__len__`` and ``get_batch(indices, generator)``.
See :func:`fit`.
"""

from masklab.train.checkpoint import RunFiles, load_model, load_run
from masklab.train.config import TrainConfig
from masklab.train.loop import EpochSampler, FitResult, fit, move_to
from masklab.train.optim import build_optimizer, lr_at, param_groups

__all__ = [
    "EpochSampler",
    "FitResult",
    "RunFiles",
    "TrainConfig",
    "build_optimizer",
    "fit",
    "load_model",
    "load_run",
    "lr_at",
    "move_to",
    "param_groups",
]
