"""One-file checkpoints: safetensors + an integrity hash, written atomically.

A training run directory holds::

    config.json               {"masklab_version", "kind", "model": {...}, "train": {...}}
    checkpoint.safetensors    model.* weights, optim.* AdamW state, rng.* states; metadata (str -> str)
    metrics.jsonl             one JSON record per logged step
    loss.png                  loss curve (when matplotlib is installed)

Only safetensors is used, never pickle / ``torch.load``: a checkpoint from someone else cannot run code.
Every write goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed over the
target with :func:`os.replace`, so a crash (even SIGKILL) at any moment leaves either the old or the new
complete file. The ``sha256`` metadata entry covers every tensor's name, dtype, shape and raw bytes, so a
bit flip is reported instead of silently loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint.safetensors"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
LOSS_PLOT_NAME = "loss.png"
HASH_KEY = "sha256"
MODEL_PREFIX = "model."

# A safetensors header is JSON describing every tensor; anything this large is corruption, not a model.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_TMP_SUFFIX = ".tmp"


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, truncated, corrupted or not a masklab run."""


# --------------------------------------------------------------------------------------------- atomic I/O
def _fsync_dir(directory: Path) -> None:
    # The rename itself lives in the directory entry; without this a power loss can forget it (POSIX only).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(tmp_path)``, fsync the result, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
    try:
        # O_EXCL + mode 0o666 lets the umask decide permissions, like a plain open() would (mkstemp
        # would force 0o600 and make every checkpoint private).
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-written temp file behind.
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix."""
    return _atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (``ValueError`` if it is not JSON-serialisable)."""
    try:
        text = json.dumps(obj, indent=2) + "\n"
    except TypeError as err:
        raise ValueError(f"cannot write {path}: value is not JSON-serialisable ({err})") from err
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temp_files(directory: str | Path) -> None:
    """Delete temp files a killed writer left in ``directory`` (they are never valid data)."""
    for name in (CHECKPOINT_NAME, CONFIG_NAME, METRICS_NAME, LOSS_PLOT_NAME):
        for stale in Path(directory).glob(f".{name}.*{_TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- checkpoints
def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        # view(uint8) gives the exact stored bytes for every dtype (bf16 included, which numpy lacks).
        raw = t.reshape(-1).view(torch.uint8).numpy()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape), raw.nbytes]).encode("utf-8"))
        digest.update(raw)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Atomically write ``tensors`` plus ``metadata`` (str -> str) and an integrity hash to ``path``.

    Tensors must not share memory (safetensors refuses); copy tied weights first.
    """
    from safetensors.torch import save_file

    bad = {k: type(v).__name__ for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise ValueError(f"checkpoint metadata must map str to str; offending entries: {bad}")
    if HASH_KEY in metadata:
        raise ValueError(f"metadata key {HASH_KEY!r} is reserved for the integrity hash")
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**metadata, HASH_KEY: tensors_sha256(cpu)}
    return _atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=meta))


def _check_layout(path: Path, data: bytes) -> dict[str, str]:
    """Validate the safetensors framing ourselves so corruption gets a sentence, not a struct error."""
    size = len(data)
    if size < 8:
        raise CheckpointError(f"{path}: file is {size} bytes, too small to be a safetensors checkpoint")
    header_len = int.from_bytes(data[:8], "little")
    if header_len == 0 or header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
        raise CheckpointError(
            f"{path}: bad header: it declares {header_len} header bytes but the file has {size} bytes "
            "(truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: bad header: not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: bad header: expected a JSON object")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as err:
            raise CheckpointError(f"{path}: bad header: tensor {name!r} has no valid data_offsets") from err
    expected = 8 + header_len + end
    if size < expected:
        raise CheckpointError(f"{path}: truncated: expected {expected} bytes, the file has {size}")
    if size > expected:
        raise CheckpointError(f"{path}: {size - expected} unexpected trailing bytes after the tensor data")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: bad header: __metadata__ must map str to str")
    return metadata


def load_checkpoint(path: str | Path, *, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(tensors, metadata)`` on CPU.

    Raises :class:`CheckpointError` naming the file for a missing, truncated or corrupted file, and
    (when ``verify``) for a missing or mismatching integrity hash.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}")
    data = path.read_bytes()
    metadata = _check_layout(path, data)
    try:
        tensors = load(data)
    except Exception as err:  # safetensors raises its own untyped errors; the path matters more than the type.
        raise CheckpointError(f"{path}: cannot decode tensors: {err}") from err
    del data
    if verify:
        stored = metadata.get(HASH_KEY)
        if stored is None:
            raise CheckpointError(f"{path}: no {HASH_KEY!r} integrity hash in the metadata (not a masklab checkpoint?)")
        actual = tensors_sha256(tensors)
        if actual != stored:
            raise CheckpointError(
                f"{path}: integrity check failed: the tensors hash to {actual[:16]}…, the metadata "
                f"says {stored[:16]}… (the file is corrupted)"
            )
    return tensors, metadata


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
    (the loop's sampler position, log window, ...)."""
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
