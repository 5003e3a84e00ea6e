"""A training run directory and the training state in its checkpoint.

A run directory holds::

    config.json               {"masklab_version", "kind", "model": {...}, "train": {...}}
    checkpoint.safetensors    model.* weights, optim.* AdamW state, rng.* states; metadata (str -> str)
    metrics.jsonl             one JSON record per logged step
    loss.png                  loss curve (when matplotlib is installed)

The file format (safetensors + sha256, atomic writes, never pickle) is :mod:`masklab.core.io`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from masklab.core.io import CheckpointError, load_checkpoint, save_checkpoint
from masklab.models.registry import build_model

CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
LOSS_PLOT_NAME = "loss.png"
MODEL_PREFIX = "model."
RUN_FILES = (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, LOSS_PLOT_NAME)


# ------------------------------------------------------------------------------------------ run directory
@dataclass(frozen=True)
class RunFiles:
    """What inference code needs from a run: its config, its model weights and the checkpoint metadata."""

    config: dict
    model_state: dict[str, torch.Tensor]
    metadata: dict[str, str]

    @property
    def step(self) -> int:
        """The optimizer step the weights were saved at."""
        return int(self.metadata.get("step", "0"))


def read_run_config(run_dir: str | Path) -> dict:
    """Read and sanity-check ``run_dir/config.json``; :class:`CheckpointError` if it is not a masklab run."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a directory (expected a masklab run directory)")
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{run_dir} is not a masklab run: it has no {CONFIG_NAME}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(config.get("kind"), str) or "model" not in config:
        raise CheckpointError(f"{config_path}: not a masklab run config (needs 'kind' and 'model')")
    return config


def load_run(run_dir: str | Path, *, verify: bool = True) -> RunFiles:
    """Load ``config.json`` and the ``model.`` tensors (prefix stripped) of a training run directory."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    if not checkpoint.is_file():
        raise CheckpointError(f"{run_dir} has no {CHECKPOINT_NAME} (training stopped before its first checkpoint?)")
    tensors, metadata = load_checkpoint(checkpoint, verify=verify)
    model_state = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    if not model_state:
        raise CheckpointError(f"{checkpoint}: holds no {MODEL_PREFIX}* tensors")
    return RunFiles(config=config, model_state=model_state, metadata=metadata)


# ---------------------------------------------------------------------------------------------- resuming
def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of checkpoint ``path`` from its header alone (no tensors read, no hash checked); ``{}`` when
    it cannot be read (loading the checkpoint then says why)."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        metadata = header.get("__metadata__") or {}
    except (OSError, ValueError, AttributeError, MemoryError, OverflowError):
        return {}
    return {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}


def check_micro_batches(path: str | Path, metadata: Mapping[str, str], world: int, grad_accum: int) -> None:
    """``ValueError`` when resuming the checkpoint at ``path`` on ``world`` processes with ``grad_accum`` would
    cut each step's batch into another number of micro-batches than it was trained with: every micro-batch's
    masks and dropout are seeded by its index (``train.loop``), so only ``world x grad_accum`` may not change
    (2 processes x 1 continue 1 process x 2 exactly). A checkpoint that does not record it is not checked."""
    try:
        old_world, old_accum = int(metadata["world_size"]), int(metadata["grad_accum"])
    except (KeyError, ValueError):
        return
    if old_world * old_accum != world * grad_accum:
        raise ValueError(
            f"cannot resume {path} with --grad-accum {grad_accum} on {world} process(es): that makes "
            f"{world * grad_accum} micro-batches per step, but the run was trained with {old_world * old_accum} "
            f"({old_world} process(es) x grad_accum {old_accum}); each micro-batch's masks and dropout are drawn "
            f"from its index, so keep processes x --grad-accum = {old_world * old_accum}"
        )


def check_resume(path: str | Path, kind: str, model_config: dict, world: int, grad_accum: int) -> dict[str, str]:
    """Refuse to resume the run directory ``path`` with another model or another number of micro-batches per
    step (:func:`check_micro_batches`); returns its checkpoint's metadata."""
    path = Path(path)
    if (path / CONFIG_NAME).is_file():
        saved = read_run_config(path)
        if saved["kind"] != kind or saved["model"] != json.loads(json.dumps(model_config)):
            raise ValueError(
                f"cannot resume {path}: its {CONFIG_NAME} describes a different model "
                f"(saved kind={saved['kind']!r} model={saved['model']}, given kind={kind!r} model={model_config})"
            )
    metadata = read_metadata(path / CHECKPOINT_NAME)
    check_micro_batches(path, metadata, world, grad_accum)
    return metadata


# ---------------------------------------------------------------------------------------- training state
def save_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    step: int,
    extra_metadata: Mapping[str, str],
) -> Path:
    """Write everything a bit-identical resume needs: ``model.*`` weights, ``optim.*`` AdamW state,
    ``rng.*`` states (torch CPU, the loop generator, CUDA when training there) and ``extra_metadata``
    (the loop's sampler position, log window, world size and grad_accum, and on CPU the kernels it trained
    with, ``cpu_kernels``: :func:`masklab.train.cpu_probe.cpu_kernels`)."""
    from masklab import __version__
    from masklab.train.optim import optimizer_state_tensors

    # Copies, not views: tied weights share storage, which safetensors refuses to write.
    tensors = {f"{MODEL_PREFIX}{k}": v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    optim_tensors, groups_json = optimizer_state_tensors(optimizer)
    tensors.update(optim_tensors)
    tensors["rng.torch_cpu"] = torch.get_rng_state()
    tensors["rng.loop_generator"] = generator.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    metadata = {
        "format": "masklab.checkpoint/1",
        "masklab_version": __version__,
        "step": str(step),
        "optim_param_groups": groups_json,
        **extra_metadata,
    }
    return save_checkpoint(path, tensors, metadata)


def load_training_state(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
) -> dict[str, str]:
    """Restore what :func:`save_training_state` wrote (in place) and return the metadata."""
    from masklab.train.optim import load_optimizer_state

    tensors, metadata = load_checkpoint(path)
    missing = [k for k in ("step", "optim_param_groups") if k not in metadata]
    missing += [k for k in ("rng.torch_cpu", "rng.loop_generator") if k not in tensors]
    if missing:
        raise CheckpointError(f"{path}: not a masklab training checkpoint (missing {missing})")
    model_state = {k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    try:
        model.load_state_dict(model_state)
        load_optimizer_state(optimizer, tensors, metadata["optim_param_groups"])
    except (RuntimeError, ValueError) as err:
        raise CheckpointError(f"{path} does not fit this model: {err}") from err
    torch.set_rng_state(tensors["rng.torch_cpu"])
    generator.set_state(tensors["rng.loop_generator"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    return metadata


def load_model(run_dir: str | Path, *, device: str = "cpu") -> torch.nn.Module:
    """Rebuild a trained model from a run directory: :func:`build_model` + its checkpoint weights, in
    eval mode. Raises ``CheckpointError`` for a missing/corrupted run, ``ValueError`` for an unknown kind."""
    run = load_run(run_dir)
    model = build_model(run.config)
    try:
        model.load_state_dict(run.model_state)
    except RuntimeError as err:
        detail = weights_mismatch(model.state_dict(), run.model_state) or str(err)
        raise CheckpointError(
            f"{Path(run_dir) / CHECKPOINT_NAME} does not hold the weights of the {run.config['kind']!r} model "
            f"{CONFIG_NAME} describes: {detail}"
        ) from None
    return model.to(device).eval()


def weights_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """One line on how the tensors ``found`` differ from the ``expected`` ones ("" when they fit): counts of
    shape mismatches, missing and unexpected names, each with its first example."""
    shapes = [k for k in expected if k in found and expected[k].shape != found[k].shape]
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} tensor(s) of another shape (e.g. {k}: {tuple(found[k].shape)} in the checkpoint, "
                     f"{tuple(expected[k].shape)} in the model)")  # fmt: skip
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    return "; ".join(parts)
