"""``Run``: one training run directory and everything that reads or writes it.

A run directory holds::

    config.json               {"masklab_version", "kind", "model": {...}, "train": {...}}  (written by fit)
    checkpoint.safetensors    weights, optimizer and RNG state (atomic, sha256)
    metrics.jsonl             one record per logged step
    arguments.json            the recipe and the arguments it was called with (a bare ``--resume`` replays them)
    data.json | text.json | lm.json | table.json   what the data was (one sidecar per modality)
    .lock                     while a process writes the run: {"pid", "host", "since"}

``Run`` owns the file names, the sidecars, the exclusive lock, the resume check (a resumed run must describe
the same model, schedule and data as the recorded one; each differing key is named) and loading the model.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from masklab.core.io import atomic_write_json
from masklab.core.lock import LOCK_NAME as LOCK_NAME  # the name callers import from here
from masklab.core.lock import FolderLockedError, folder_lock
from masklab.train.checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    check_micro_batches,
    read_metadata,
    read_run_config,
)

ARGUMENTS_NAME = "arguments.json"
# Keys a resumed run may change: how long, where and on what engine it runs, not what it computes (a checkpoint
# resumes on any world size, with or without FSDP or compile). A longer --steps extends a run (its cosine schedule
# is then stretched, so the derived warmup may move with it). Precision is not among them. grad_accum may change
# only with the world size, keeping processes x grad_accum (the micro-batches per step, whose index seeds each
# one's masks and dropout): checkpoint.check_micro_batches, in check_resume and in fit.
RESUME_OVERRIDES = frozenset({
    "train.steps", "train.warmup_steps", "train.max_seconds", "train.device", "train.log_every", "train.ckpt_every",
    "train.grad_accum", "train.fsdp", "train.compile", "train.workers",
})  # fmt: skip


class RunLockedError(FolderLockedError):
    """Another live process is writing this run directory (an ``OSError``: the CLI reports it, exit 2)."""


class ResumeMismatchError(ValueError):
    """A resume was asked with settings that differ from the recorded run; ``keys`` names each one."""

    def __init__(self, path: Path, differences: dict[str, tuple[Any, Any]]) -> None:
        self.keys = sorted(differences)
        lines = "; ".join(f"{k}: recorded {old!r}, given {new!r}" for k, (old, new) in sorted(differences.items()))
        super().__init__(f"cannot resume {path}: settings differ from the recorded run ({lines})")


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": leaf}``; values normalised through JSON (tuples become lists)."""
    value = json.loads(json.dumps(value))
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    if not value and prefix:
        out[prefix] = {}
    return out


class Run:
    """A training run directory ``path`` (it need not exist yet)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ----------------------------------------------------------------------------------------------- files
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_NAME

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def config(self) -> dict:
        """``config.json`` checked to be a masklab run config (``CheckpointError`` otherwise)."""
        return read_run_config(self.path)

    def kind(self) -> str:
        """The model kind recorded in ``config.json`` (``FileNotFoundError`` when the directory is no run)."""
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a masklab run: {self.config_path} does not exist")
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"{self.config_path}: not a masklab run config (byte {err.start} is not UTF-8)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.config_path}: not valid JSON ({err})") from None
        try:
            return str(config["kind"])
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"{self.config_path} is not a valid masklab run config (need an object with 'kind')"
            ) from err

    def read_sidecar(self, name: str) -> dict[str, Any]:
        """The JSON sidecar ``name`` (``data.json``, ``text.json``, ...); ``{}`` when absent (a run trained
        without a recipe), ``ValueError`` naming the file when it is not valid JSON."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"{path}: not valid JSON (byte {err.start} is not UTF-8)") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err

    def write_sidecar(self, name: str, values: Mapping[str, Any]) -> Path:
        """Write ``name`` atomically (the directory is created when missing)."""
        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_json(self.path / name, dict(values))

    def recorded_arguments(self) -> dict[str, Any]:
        """The arguments of the recipe call that made this run (``{}`` for a run made otherwise)."""
        return dict(self.read_sidecar(ARGUMENTS_NAME).get("arguments", {}))

    def record_arguments(self, recipe: str, arguments: Mapping[str, Any]) -> Path:
        return self.write_sidecar(ARGUMENTS_NAME, {"recipe": recipe, "arguments": dict(arguments)})

    def load_model(self, device: str = "cpu", *, kind: str | None = None):
        """The trained model in eval mode (:func:`masklab.train.checkpoint.load_model`); with ``kind``, a run
        of another kind is a ``ValueError`` naming both."""
        from masklab.core.device import resolve_device
        from masklab.train.checkpoint import load_model

        if kind is not None and (found := self.kind()) != kind:
            raise ValueError(f"{self.path} is a {found!r} run, not a {kind!r} run")
        return load_model(self.path, device=str(resolve_device(device)))

    # ------------------------------------------------------------------------------------------- lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[Run]:
        """Hold ``RUN/.lock`` while writing the run: a second writer gets :class:`RunLockedError` naming the
        holder. A lock left by a dead process on this host (a killed run) is stale and taken over
        (:func:`masklab.core.lock.folder_lock`). Under torchrun only rank 0 writes the run, so only rank 0 locks
        it. Re-entrant within one process (a recipe may hold the lock around
        :func:`~masklab.recipes.common.train_run`, which takes it too)."""
        if os.environ.get("RANK", "0") != "0":
            yield self
            return
        with folder_lock(self.path, doing="written", error=RunLockedError):
            yield self

    # ------------------------------------------------------------------------------------------ resume
    def check_fresh(self) -> None:
        """A new run may not overwrite a finished or interrupted one."""
        if self.has_checkpoint():
            raise ValueError(f"{self.path} already holds a run; pass --resume to continue it or choose another --out")

    def check_resume(
        self,
        config: Mapping[str, Any],
        sidecars: Mapping[str, Mapping[str, Any]] = {},
        *,
        allow: Iterable[str] = RESUME_OVERRIDES,
        ignore: Iterable[str] = (),
    ) -> None:
        """Refuse to resume with settings that differ from the recorded ones.

        ``config`` is what ``config.json`` would now hold (``kind``, ``model``, ``train``); ``sidecars`` maps
        a sidecar name to its new content. Every differing leaf key (``model.mask_ratio``, ``train.lr``,
        ``text.json.seq_len``) is named in one :class:`ResumeMismatchError`; keys in ``allow`` (explicit
        overrides such as a longer ``train.steps``) and ``ignore`` may differ; ``train.grad_accum`` only where
        processes x grad_accum stays as recorded (``ValueError`` naming both). Nothing is written.
        """
        if not self.has_checkpoint():
            raise FileNotFoundError(f"cannot resume: {self.path} has no {CHECKPOINT_NAME} (drop --resume)")
        recorded = self.config()
        old = _flatten({k: recorded.get(k) for k in ("kind", "model", "train") if k in config}, "")
        new = _flatten({k: config[k] for k in ("kind", "model", "train") if k in config}, "")
        for name, values in sidecars.items():
            saved = self.read_sidecar(name)
            if saved:  # a run without the sidecar (made outside a recipe) has nothing to compare
                old.update(_flatten(saved, name))
                new.update(_flatten(values, name))
        skip = set(allow) | set(ignore)
        missing = object()
        differences = {
            key: (old.get(key), new.get(key))
            for key in sorted(set(old) | set(new))
            if key not in skip and old.get(key, missing) != new.get(key, missing)
        }
        if differences:
            raise ResumeMismatchError(self.path, differences)
        grad_accum = new.get("train.grad_accum")
        if isinstance(grad_accum, int):  # the same micro-batches per step on this many processes (torchrun's)
            world = int(os.environ.get("WORLD_SIZE", "1"))
            check_micro_batches(self.path, read_metadata(self.checkpoint_path), world, grad_accum)
        self._check_readable()

    def _check_readable(self) -> None:
        """Read the checkpoint (its hash checked) and the metrics log, so that a resume that could not load them
        fails before the recipe rewrites ``arguments.json`` or ``config.json`` (each error names its file)."""
        from masklab.core.io import load_checkpoint
        from masklab.train.progress import read_metrics

        load_checkpoint(self.checkpoint_path)
        read_metrics(self.path / METRICS_NAME)
