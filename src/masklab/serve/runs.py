"""Load the runs a server shows, once, at start-up: the same loaders the CLI commands use.

Each run becomes a :class:`LoadedRun` named after its directory (made URL-safe and unique) with a lock (a
:class:`~masklab.serve.gate.Gate`): a model is called by one request at a time (PyTorch modules are not
re-entrant under concurrent forwards with caches, and CPU threads are better spent inside one forward than
across two). Whatever the requests need of the run's folder (sidecars, recorded arguments) is read here too,
into ``info``: a run folder changed, broken or deleted while the server runs does not change what it serves.
A run that cannot be loaded is a :class:`RunLoadError` naming the directory and the reason, for every bad run
at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from masklab.serve import heads
from masklab.serve.gate import Gate

KINDS = ("mae", "mlm", "clm", "table", "series", "segment")
SERVED = ("mae (with its segmentation head, when one is trained), mlm, clm, table, series, and segment (a head "
          "folder)")  # fmt: skip
EXAMPLES = 12  # held-out images (series) offered by an MAE (series, segmentation) panel


@dataclass
class LoadedRun:
    """One served run. ``model`` is the network (MAE, BertForMLM, GPT, PatchTST, Segmenter) or, for ``table``,
    the :class:`~masklab.estimators.MaskedImputer`; ``detector`` is the table run's anomaly detector;
    ``examples``: ``(N, C, H, W)`` held-out images of an MAE run's own data, or a series run's held-out series
    (a :class:`~masklab.data.series.SeriesSet`), None when that data is not here; ``segment``: the
    :class:`~masklab.serve.heads.SegmentHead` of an MAE run with a trained head, or of a head folder;
    ``info``: what was read of the run's folder at load (a table run: ``exclude`` and ``label``, the columns
    training set aside; a series run: ``label``, its long-format label column, and ``horizon``, the one it
    recorded)."""

    name: str
    kind: str
    path: Path
    model: Any
    tokenizer: Any = None
    detector: Any = None
    examples: Any = None
    segment: Any = None
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    lock: Gate = field(default_factory=Gate)


class RunLoadError(ValueError):
    """One or more runs could not be loaded; the message has a line per run."""


def run_kind_of(path: Path) -> str:
    """The kind (:data:`KINDS`) of a masklab run or a Hugging Face GPT-2 / BERT folder."""
    from masklab.recipes.clm import hf_model_type
    from masklab.train.run import Run

    hf = hf_model_type(path)
    if hf is not None:
        if hf not in ("gpt2", "bert"):
            raise ValueError(f"a Hugging Face {hf!r} folder; only GPT-2 (clm) and BertForMaskedLM (mlm) are served")
        return "clm" if hf == "gpt2" else "mlm"
    kind = Run(path).kind()
    if kind not in KINDS:
        raise ValueError(f"a {kind!r} run; masklab serve shows {SERVED} runs")
    return kind


def _examples(path: Path, model) -> tuple[Any, list[str]]:
    """Up to :data:`EXAMPLES` held-out images of the run's own data, or None and a note saying why not."""
    import torch

    from masklab.recipes.mae import DATA_FILE, load_split
    from masklab.train.run import Run

    spec = Run(path).read_sidecar(DATA_FILE).get("spec")
    if spec is None:
        return None, [f"no built-in examples: {path / DATA_FILE} does not name the run's data"]
    try:
        dataset, _, test_idx = load_split(spec, path, model)
    except (OSError, ValueError, ImportError) as err:
        return None, [f"no built-in examples: the run's data cannot be loaded here ({err})"]
    pick = torch.randperm(len(test_idx), generator=torch.Generator().manual_seed(0))[:EXAMPLES]
    return dataset.images(test_idx[pick.sort().values]), []


def _series_examples(path: Path, model) -> tuple[Any, list[str]]:
    """Up to :data:`EXAMPLES` series of the run's own data (its test split when it has one), named as in the
    data, or None and a note saying why not."""
    import dataclasses

    import numpy as np

    from masklab.recipes.series import SERIES_FILE, run_data, series_info

    if not series_info(path).get("data"):
        return None, [f"no built-in examples: {path / SERIES_FILE} does not name the run's data"]
    try:
        data = run_data(path, None, channels=model.config.channels)
    except (OSError, ValueError, ImportError) as err:
        return None, [f"no built-in examples: the run's data cannot be loaded here ({err})"]
    notes = []
    if data.split is not None and (data.split == "test").any():
        pool = np.flatnonzero(data.split == "test")
    else:
        pool = np.arange(len(data))
        notes.append(f"the examples are series this run was trained on: its data ({data.name}) has no held-out "
                     "split")  # fmt: skip
    cfg = model.config
    covered = cfg.patch_len + (cfg.max_patches - 1) * cfg.stride
    pool = pool[data.lengths[pool] <= covered]
    if not len(pool):
        return None, [f"no built-in examples: every series of {data.name} is longer than the {covered} steps "
                      "this model covers"]  # fmt: skip
    rng = np.random.default_rng(0)
    pick = np.sort(pool[rng.choice(len(pool), size=min(EXAMPLES, len(pool)), replace=False)])
    if not data.name.startswith("builtin:"):  # a file of the user's: its name is enough on the page
        data = dataclasses.replace(data, name=Path(data.name).name)
    names = data.names()
    return dataclasses.replace(data.subset(pick), ids=tuple(names[i] for i in pick)), notes


def load_one(path: Path, name: str, device: str) -> LoadedRun:
    """Load the run at ``path`` for serving (``ValueError`` / ``FileNotFoundError`` saying why it cannot be)."""
    from masklab.core.device import resolve_device

    if not path.is_dir():
        raise FileNotFoundError("not a directory" if path.exists() else "no such directory")
    kind = run_kind_of(path)
    device = str(resolve_device(device))
    if kind == "mae":
        from masklab.recipes.mae import load_mae_run

        model = load_mae_run(path, device)
        if model.config.objective != "reconstruct":
            raise ValueError("a fine-tuned classifier; serve needs a pretrained MAE run (it reconstructs images)")
        examples, notes = _examples(path, model)
        head, head_notes = heads.head_of_mae_run(path, model, device)
        return LoadedRun(name, kind, path, model, examples=examples, segment=head, notes=notes + head_notes)
    if kind == "segment":
        head = heads.load_head(path, None, device)
        return LoadedRun(name, kind, path, head.model, segment=head, notes=head.notes)
    if kind == "series":
        from masklab.recipes.series import load_pretrained, series_info
        from masklab.train.run import Run

        model = load_pretrained(path, device)
        examples, notes = _series_examples(path, model)
        info = {"label": series_info(path).get("label"), "horizon": Run(path).recorded_arguments().get("horizon")}
        return LoadedRun(name, kind, path, model, examples=examples, notes=notes, info=info)
    if kind == "mlm":
        from masklab.recipes.mlm_tasks import load_fill_model

        model, tokenizer = load_fill_model(path, device)
        return LoadedRun(name, kind, path, model, tokenizer=tokenizer)
    if kind == "clm":
        from masklab.recipes.clm import load_lm_run

        model, tokenizer, _ = load_lm_run(path, device)
        return LoadedRun(name, kind, path, model.eval(), tokenizer=tokenizer)
    from masklab.estimators import MaskedImputer
    from masklab.recipes.table import load_detector, trained_aside

    imputer = MaskedImputer.from_run(path, device=device)
    detector = load_detector(path, device=device)  # the run's stored scoring: the same scores as `masklab score`
    exclude, label = trained_aside(path)
    return LoadedRun(name, kind, path, imputer, detector=detector, info={"exclude": exclude, "label": label})


def run_names(paths: list[Path]) -> list[str]:
    """URL-safe, unique names from the directory names (``runs/demo mae`` -> ``demo-mae``; repeats get -2, -3)."""
    names: list[str] = []
    for path in paths:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name).strip("-.") or "run"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


def load_runs(paths: list[str | Path], device: str = "cpu") -> list[LoadedRun]:
    """Every run in ``paths`` loaded, or :class:`RunLoadError` listing each one that could not be (and why)."""
    if not paths:
        raise RunLoadError("give at least one run directory to serve")
    dirs = [Path(p) for p in paths]
    runs, problems = [], []
    for path, name in zip(dirs, run_names(dirs), strict=True):
        try:
            runs.append(load_one(path, name, device))
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            problems.append(f"cannot serve {path}: {err}")
    if problems:
        raise RunLoadError("\n".join(problems))
    return runs
