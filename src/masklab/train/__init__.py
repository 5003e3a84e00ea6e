"""masklab.train: the one training loop every model reuses, its optimizer and its checkpoints.

A model is trainable when it is an ``nn.Module`` with ``training_loss(batch, generator) -> LossOutput``;
data when it has ``__len__`` and ``get_batch(indices, generator)``. See :func:`fit`.
"""

from masklab.train.checkpoint import (
    CheckpointError,
    RunFiles,
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    load_run,
    save_checkpoint,
)
from masklab.train.loop import (
    EpochSampler,
    FitResult,
    LossOutput,
    Trainable,
    TrainConfig,
    TrainData,
    fit,
    move_to,
    resolve_device,
)
from masklab.train.optim import build_optimizer, lr_at, param_groups

__all__ = [
    "CheckpointError",
    "EpochSampler",
    "FitResult",
    "LossOutput",
    "RunFiles",
    "TrainConfig",
    "TrainData",
    "Trainable",
    "atomic_write_bytes",
    "atomic_write_json",
    "build_optimizer",
    "fit",
    "load_checkpoint",
    "load_run",
    "lr_at",
    "move_to",
    "param_groups",
    "resolve_device",
    "save_checkpoint",
]
