"""Per-modality command handlers behind the generic CLI commands.

Each module here (``mae``, ``mlm``, ``clm``, ``table``) is named after a model kind (the ``kind`` stored in a
run's ``config.json``) and may define:

- ``add_pretrain_args(parser)`` and ``pretrain(args) -> int | None`` for ``masklab pretrain <kind>``;
- ``embed(args)``, ``finetune(args)``, ``probe(args)`` for the run-dispatched commands of the same names.

Modules import only the standard library at top level (the CLI imports them to build ``--help``); torch,
models and data are imported inside the handlers.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

KINDS = ("mae", "mlm", "clm", "table", "series")


def app_module(kind: str) -> ModuleType | None:
    """The handler module for ``kind``, or None if this install has no such modality yet."""
    if kind not in KINDS:
        return None
    try:
        return importlib.import_module(f"masklab.apps.{kind}")
    except ModuleNotFoundError as err:
        if err.name == f"masklab.apps.{kind}":
            return None
        raise


def run_kind(run_dir: str | Path) -> str:
    """Read the model kind of a training run directory (``RUN/config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a masklab run: {path} does not exist")
    try:
        kind = json.loads(path.read_text())["kind"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a valid masklab run config (need a JSON object with 'kind')") from err
    return str(kind)


def read_run_info(run_dir: str | Path, name: str) -> dict:
    """A run's optional JSON sidecar ``RUN/name`` (``data.json``, ``text.json``, ...); ``{}`` when absent (a run
    trained without the CLI), ``ValueError`` naming the file when it is not valid JSON."""
    path = Path(run_dir) / name
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def dispatch(command: str, args) -> int | None:
    """Call ``masklab.apps.<kind>.<command>(args)`` for the kind of ``args.run``."""
    kind = run_kind(args.run)
    module = app_module(kind)
    handler = getattr(module, command, None) if module is not None else None
    if handler is None:
        raise ValueError(f"'masklab {command}' is not available for runs of kind {kind!r}")
    return handler(args)


def fit_run(model, data, cfg, out, **kwargs):
    """:func:`masklab.train.fit`, then ``RUN/loss.png`` (rank 0 only; a missing matplotlib is a note, not an error)."""
    import os
    import sys

    from masklab.train import fit
    from masklab.viz.curves import write_run_loss_plot

    result = fit(model, data, cfg, out, **kwargs)
    if os.environ.get("RANK", "0") == "0":
        note = write_run_loss_plot(result.out_dir)
        if note:
            print(note, file=sys.stderr)
    return result
