"""``describe_run``: what a training run directory holds (kind, configs, step, parameters, checkpoint, loss)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from masklab.estimators import ESTIMATOR_FILE


def describe_run(run_dir: str | Path) -> dict[str, Any]:
    """A JSON-able summary of a run directory; the checkpoint's hash is verified (``CheckpointError``). A
    folder written by a table estimator's ``save`` (``estimator.json``) is described by
    :func:`describe_estimator` instead."""
    from masklab.train.checkpoint import CHECKPOINT_NAME, METRICS_NAME, load_run
    from masklab.train.progress import read_metrics

    run_dir = Path(run_dir)
    if (run_dir / ESTIMATOR_FILE).is_file() and not (run_dir / "config.json").exists():
        return describe_estimator(run_dir)
    run = load_run(run_dir)
    state = run.model_state
    logged = read_metrics(run_dir / METRICS_NAME)
    # A run stopped at once (a second Ctrl-C, a kill) may have logged steps its checkpoint does not hold; they
    # are not the saved model's (``--resume`` drops them), so they are counted but not described.
    records = [r for r in logged if not isinstance(r.get("step"), int) or r["step"] <= run.step]
    losses = [r["loss"] for r in records if isinstance(r.get("loss"), (int, float))]
    train = run.config.get("train", {})
    minutes = _recorded_minutes(run_dir)
    if minutes is None and isinstance(train.get("max_seconds"), (int, float)):
        minutes = train["max_seconds"] / 60
    return {
        "run_dir": str(run_dir.resolve()),
        "kind": run.config["kind"],
        "masklab_version": run.metadata.get("masklab_version", run.config.get("masklab_version")),
        "step": run.step,
        "total_steps": train.get("steps"),
        "stop_reason": run.metadata.get("stop_reason"),  # "time budget", or None: it ran its steps (or is running)
        "budget_minutes": minutes,
        "num_parameters": sum(t.numel() for t in state.values()),
        "num_tensors": len(state),
        "checkpoint_bytes": (run_dir / CHECKPOINT_NAME).stat().st_size,
        "dtypes": dict(Counter(str(t.dtype).removeprefix("torch.") for t in state.values())),
        "model": run.config["model"],
        "train": train,
        "evaluation": _evaluation(run_dir),
        "metrics": {
            "records": len(records),
            "last": records[-1] if records else None,
            "min_loss": min(losses) if losses else None,
            "past_checkpoint": len(logged) - len(records),  # records of steps after the checkpoint's
        },
    }


def describe_estimator(path: str | Path) -> dict[str, Any]:
    """A JSON-able summary of a saved table estimator: class, parameters, features, training, and its
    ``model.safetensors`` (parameter count, size; read without unpickling anything)."""
    from masklab.core.io import load_checkpoint

    path = Path(path)
    try:
        meta = json.loads((path / ESTIMATOR_FILE).read_text(encoding="utf-8"))
        fitted, params = meta["fitted"], meta["params"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path / ESTIMATOR_FILE}: not a saved masklab estimator ({err})") from err
    weights = path / "model.safetensors"
    shapes = {}
    if weights.is_file():
        tensors, _ = load_checkpoint(weights)  # a damaged file is a CheckpointError naming it (exit 2)
        shapes = {key: list(t.shape) for key, t in tensors.items()}
    model = {k: v for k, v in shapes.items() if k.startswith("model.")}  # the rest: e.g. the neighbour rows
    count = sum(math.prod(shape) for shape in model.values())
    return {
        "run_dir": str(path.resolve()),
        "kind": "estimator",
        "class": meta.get("class"),
        "format": meta.get("format"),
        "features": fitted.get("feature_names_in_") or fitted.get("n_features_in_"),
        "steps": fitted.get("n_steps_"),
        "train_loss": fitted.get("train_loss_"),
        "threshold": fitted.get("threshold_"),
        "num_parameters": count,
        "num_tensors": len(model),
        "other_tensors": sorted({k.split(".")[0] for k in shapes if k not in model}),
        "weights_bytes": weights.stat().st_size if weights.is_file() else None,
        "params": params,
    }


def format_estimator(info: dict[str, Any]) -> str:
    """The human-readable rendering of :func:`describe_estimator`."""
    features = info["features"]
    named = ", ".join(map(str, features)) if isinstance(features, list) else f"{features} (unnamed)"
    size = _size(info["weights_bytes"]) if info["weights_bytes"] is not None else "missing"
    lines = [
        f"estimator    {info['run_dir']}",
        f"class        {info['class']}   ({info['format']})",
        f"features     {named}",
        f"trained      {info['steps']} steps, last loss {info['train_loss']}",
        *([f"threshold    {info['threshold']:.6g}"] if isinstance(info["threshold"], (int, float)) else []),
        f"parameters   {info['num_parameters']:,} in {info['num_tensors']} tensors (model.safetensors {size}"
        + "".join(f"; also {name} tensors" for name in info["other_tensors"])
        + ")",
        "params       " + " ".join(f"{k}={v}" for k, v in sorted(info["params"].items())),
    ]
    return "\n".join(lines)


def _recorded_minutes(run_dir: Path) -> float | None:
    """The ``--minutes`` the run was started with (``arguments.json``), if any."""
    try:
        minutes = json.loads((run_dir / "arguments.json").read_text(encoding="utf-8"))["arguments"]["train"]["minutes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(minutes) if isinstance(minutes, (int, float)) else None


def _evaluation(run_dir: Path) -> dict[str, Any] | None:
    """``eval.json`` (the evaluation a recipe recorded after training), or None."""
    try:
        values = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def _numbers(values: Any, prefix: str = "") -> list[str]:
    """``name value`` for every number in a nested dict (``val.loss 1.52``); the step and time left out."""
    if isinstance(values, dict):
        skip = ("step", "train_seconds")
        return [x for k, v in values.items() if k not in skip for x in _numbers(v, f"{prefix}{k}.")]
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return [f"{prefix[:-1]} {values:.6g}"]
    return []


def _step_line(info: dict[str, Any]) -> str:
    if info.get("stop_reason") == "time budget":
        budget = f" {info['budget_minutes']:g} min" if info.get("budget_minutes") is not None else ""
        return f"stopped at step {info['step']}: time budget{budget} reached"
    total = f" / {info['total_steps']}" if info["total_steps"] is not None else ""
    return f"{info['step']}{total}"


def _size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    for exponent, unit in enumerate(("KiB", "MiB", "GiB"), start=1):
        if num_bytes < 1024 ** (exponent + 1) or unit == "GiB":
            return f"{num_bytes / 1024**exponent:.1f} {unit}"
    return f"{num_bytes} B"


def format_info(info: dict[str, Any]) -> str:
    """The human-readable rendering of :func:`describe_run`."""
    if info.get("kind") == "estimator":
        return format_estimator(info)
    dtypes = ", ".join(f"{name} x{count}" for name, count in sorted(info["dtypes"].items()))
    metrics = info["metrics"]
    if metrics["last"] is not None:
        last = metrics["last"]
        loss = last.get("loss", float("nan"))
        shown = f"{loss:.6g}" if isinstance(loss, (int, float)) else repr(loss)  # a damaged log: shown as written
        loss_line = f"{shown} at step {last.get('step')}"
        least = "" if metrics["min_loss"] is None else f"min {metrics['min_loss']:.6g}, "
        loss_line += f" ({least}{metrics['records']} records)"
    else:
        loss_line = "no metrics.jsonl records"
    if metrics.get("past_checkpoint"):
        loss_line += (f"; {metrics['past_checkpoint']} record(s) of later steps left out: the checkpoint holds "
                      f"step {info['step']}")  # fmt: skip
    lines = [
        f"run          {info['run_dir']}",
        f"kind         {info['kind']}   (masklab {info['masklab_version']})",
        f"step         {_step_line(info)}",
        f"parameters   {info['num_parameters']:,} in {info['num_tensors']} tensors",
        f"dtypes       {dtypes}",
        f"checkpoint   {_size(info['checkpoint_bytes'])} (integrity hash verified)",
        f"last loss    {loss_line}",
        *(
            [f"evaluation   {', '.join(_numbers(info['evaluation']))} (step {info['evaluation'].get('step', '?')})"]
            if info.get("evaluation") and _numbers(info["evaluation"])
            else []
        ),
        "model        " + json.dumps(info["model"], sort_keys=True),
        "train        " + " ".join(f"{k}={v}" for k, v in info["train"].items()),
    ]
    return "\n".join(lines)
