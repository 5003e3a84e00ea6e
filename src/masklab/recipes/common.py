"""What every training recipe shares: :class:`TrainOptions` (budget, optimiser, engine), turning them into a
:class:`~masklab.train.TrainConfig`, and :func:`train_run` (lock the run, check a resume, record the
arguments and sidecars, fit, draw ``loss.png``)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and the training engine load when a recipe trains, not with TrainOptions
    from torch import nn

    from masklab.core.contract import TrainData
    from masklab.train import FitResult, TrainConfig
    from masklab.train.run import Run

# --minutes is a deadline for the whole call, counted from TrainOptions.started (the CLI: the command's start), so
# loading and preparing the data count. One second plus EXIT_SHARE of the budget (at most EXIT_MAX_SECONDS) is
# kept for the work after fit (loss.png, evaluation, process exit); fit stops before the rest runs out, its final
# checkpoint included, and the learning rate schedule follows the clock. Same rule for every model kind.
EXIT_SHARE, EXIT_MAX_SECONDS = 0.1, 30.0
MIN_EXAMPLES = 2  # a model fit to one example learns nothing worth reusing (and its loss falls to 0 silently)

# TrainOptions field -> (smallest valid value, True when the value must exceed it, integer); one place for
# every numeric training flag, so each kind refuses a bad value with the same words.
_LIMITS: dict[str, tuple[float, bool, bool]] = {
    "steps": (1, False, True), "epochs": (0, True, False), "minutes": (0, True, False),
    "batch_size": (1, False, True), "lr": (0, True, False), "min_lr": (0, False, False),
    "warmup": (0, False, True), "weight_decay": (0, False, False), "grad_clip": (0, True, False),
    "seed": (0, False, True), "log_every": (1, False, True), "ckpt_every": (1, False, True),
    "grad_accum": (1, False, True), "workers": (0, False, True),
}  # fmt: skip


class TooFewExamplesError(ValueError):
    """The training data has fewer than :data:`MIN_EXAMPLES` examples (the CLI adds the ``--data`` it read)."""


def check_output_is_not_input(output: str | Path, source: str | Path, task: str, flag: str = "-o", *,
                              source_flag: str | None = None) -> None:  # fmt: skip
    """``ValueError`` when ``output`` (given as ``flag``) is the input file ``source`` itself, by any name: a
    symlink, ``..`` or a hard link (a ``builtin:NAME`` source is no file): ``task`` (``impute``, ``score``)
    writes a new file and never modifies its input. ``source_flag`` (``--mask-image``) names the input given
    by that option in the message."""
    if str(source).startswith("builtin:") or not Path(output).exists():
        return
    if same_file(output, source):
        which = "the input file" if source_flag is None else f"the {source_flag} file"
        raise ValueError(f"{flag} {output} is {which}; {task} never modifies its input, pick another path")


def same_file(a: str | Path, b: str | Path) -> bool:
    """``a`` and ``b`` name one file: the same resolved path, or (both existing) the same inode, so a symlink,
    ``..`` or a hard link counts."""
    import os

    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)
    except OSError:  # vanished or unreadable in between: the resolved names were compared already
        return False


# What a run directory holds that a command's output must never replace: its own files by name, and any file of
# a run folder's formats (JSON, JSON lines, safetensors) in a folder that holds a config.json.
RUN_FILES = ("config.json", "arguments.json", "metrics.json", "metrics.jsonl", "checkpoint.safetensors",
             "model.safetensors", "tokenizer.json")  # fmt: skip
RUN_FORMATS = (".json", ".jsonl", ".safetensors")


def check_output_is_not_run_file(output: str | Path, flag: str = "-o") -> None:
    """``ValueError`` naming ``flag`` and the run folder when ``output`` would land on one of a run's own files:
    in a folder holding ``config.json``, a name of :data:`RUN_FILES` or any file ending in :data:`RUN_FORMATS`
    (by its given name and by the name its links resolve to)."""
    for path in dict.fromkeys((Path(output).absolute(), Path(output).resolve())):
        folder = path.parent
        if (path.name in RUN_FILES or path.suffix.lower() in RUN_FORMATS) and (folder / "config.json").is_file():
            raise ValueError(f"{flag} {output} would replace a file of the run in {folder} (a folder holding "
                             "config.json keeps its JSON and safetensors files); pick another path")  # fmt: skip


def check_outputs(outputs: Mapping[str, str | Path | None], inputs: Iterable[tuple[str, str | Path | None]],
                  task: str) -> None:  # fmt: skip
    """Before any work: every output (``{"-o": path, "--weights-out": path}``; ``None`` = not written) is none
    of ``inputs`` (``[("INPUT", path), ("--mask-image", path)]``; ``None`` = not given), by any name, and no
    file of a run folder (:func:`check_output_is_not_run_file`); one ``ValueError`` naming the flag otherwise."""
    inputs = list(inputs)
    for flag, output in outputs.items():
        if output is None:
            continue
        for source_flag, source in inputs:
            if source is None:
                continue
            try:
                is_file = Path(source).exists()
            except OSError:  # a name too long for a file (a text given as INPUT): no file
                is_file = False
            if is_file:
                named = None if source_flag in ("INPUT", "IMAGE") else source_flag
                check_output_is_not_input(output, source, task, flag, source_flag=named)
        check_output_is_not_run_file(output, flag)


def check_writable(output: str | Path, flag: str = "-o") -> None:
    """``OSError`` naming ``flag`` when no file can be made where ``output`` goes (checked before any work by
    creating and removing a hidden file in the nearest existing folder; folders not there yet are not made)."""
    import os
    import secrets

    folder = Path(output).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    probe = folder / f".masklab-write-check-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        raise OSError(err.errno, f"{flag} {output}: cannot write a file in {folder} ({err.strerror})") from None
    probe.unlink(missing_ok=True)


# What the picture writers encode, by the output name's suffix (none: PNG): PIL (viz.grids.write_picture) for
# image grids and images, matplotlib (core.io.atomic_write_figure) for figures.
IMAGE_FORMATS = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff")


def figure_formats() -> tuple[str, ...]:
    """The suffixes matplotlib writes a figure as (png, pdf, svg, jpg, ...)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:  # drawing will say what is missing; the name can still be checked
        return ("pdf", "png", "svg")
    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def check_picture_output(output: str | Path, formats: Iterable[str], task: str, flag: str = "-o") -> None:
    """Before any work: ``ValueError`` naming ``flag`` when ``output``'s suffix is none of ``formats`` (no suffix:
    PNG) or it is a folder, ``OSError`` when no file can be written there (:func:`check_writable`)."""
    formats = tuple(formats)
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix and suffix not in formats:
        raise ValueError(f"{flag} {output}: {task} writes a picture as " + ", ".join(f".{f}" for f in formats)
                         + f" (from the name's ending), not .{suffix}")  # fmt: skip
    if Path(output).is_dir():
        raise ValueError(f"{flag} {output} is a folder; give the picture's file name")
    check_writable(output, flag)


def check_numbers(values: Mapping[str, Any]) -> None:
    """``ValueError`` naming the flag (``--batch-size must be an integer >= 1, got 0``) for the first numeric
    training option out of range; ``None`` values are skipped."""
    for name, (low, strict, integer) in _LIMITS.items():
        value = values.get(name)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and math.isfinite(value) and (value > low if strict else value >= low)
        if integer:
            ok = ok and float(value).is_integer() and (name != "seed" or value < 2**32)
            what = f"an integer >= {low}" + (" and < 2**32" if name == "seed" else "")
        else:
            what = f"a finite number {'>' if strict else '>='} {low}"
        if not ok:
            raise ValueError(f"--{name.replace('_', '-')} must be {what}, got {value!r}")


@dataclass(frozen=True)
class TrainOptions:
    """How long and how to train; ``None`` = the recipe's default for its model kind.

    Give at most one of ``steps``, ``epochs`` (passes over the training data) and ``minutes`` (a deadline
    ``minutes`` after ``started``, when these options were made: the recipe's data preparation counts, training
    stops in time to save and return). Numbers out of range are a ``ValueError`` naming the flag.
    """

    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int | None = None
    lr: float | None = None
    min_lr: float | None = None
    warmup: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    seed: int | None = None
    device: str | None = None
    log_every: int | None = None
    ckpt_every: int | None = None
    grad_accum: int | None = None
    precision: str | None = None
    compile: bool | None = None
    fsdp: bool | None = None
    grad_checkpointing: bool | None = None
    workers: int | None = None  # DataLoader worker processes (fit's batches; also a text --data's prepare)
    # When the call began (time.monotonic()); a `minutes` budget is a deadline counted from here. Not recorded.
    started: float = field(default_factory=time.monotonic, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_numbers(self.to_dict())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainOptions:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values or {}) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**dict(values or {}))

    def to_dict(self) -> dict[str, Any]:
        """The options given (not None), as recorded in ``arguments.json`` (``started`` is not)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None and k != "started"}

    def with_defaults(self, **defaults: Any) -> TrainOptions:
        """These options, with ``defaults`` filling the ones left ``None``."""
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    @property
    def seed_or_0(self) -> int:
        return 0 if self.seed is None else self.seed


def _check_budget(options: TrainOptions) -> None:
    chosen = [name for name in ("steps", "epochs", "minutes") if getattr(options, name) is not None]
    if len(chosen) > 1:
        raise ValueError(f"give one of --steps, --epochs, --minutes (got {', '.join('--' + c for c in chosen)})")


def train_config(
    options: TrainOptions,
    model: nn.Module | None,
    data: TrainData | None,
    *,
    default_steps: int | Callable[[int], int],
    warmup: Callable[[int], int] | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The :class:`TrainConfig` that ``options`` describe (``options`` already carry the kind's defaults).

    ``default_steps`` is used when no budget is given (a function of the batch size, or a number); ``warmup``
    derives the warmup from the final step count when ``options.warmup`` is None. ``model`` and ``data`` are
    needed to time steps for ``minutes`` and to count epochs. Gradient checkpointing is switched on in
    every module of ``model`` that supports it when asked.
    """
    from masklab.train.budget import seconds_per_step

    _check_budget(options)
    if data is not None and len(data) < MIN_EXAMPLES:
        raise TooFewExamplesError(
            f"the training data has {len(data)} example(s); at least {MIN_EXAMPLES} are needed to train"
        )
    if options.grad_checkpointing and model is not None:
        for module in model.modules():
            switch = getattr(module, "set_grad_checkpointing", None)
            if callable(switch):
                switch(True)
    o = options
    batch = o.batch_size if o.batch_size is not None else 64
    fields: dict[str, Any] = dict(
        batch_size=batch, lr=o.lr, min_lr=o.min_lr, weight_decay=o.weight_decay, grad_clip=o.grad_clip,
        log_every=o.log_every, ckpt_every=o.ckpt_every, seed=o.seed, device=o.device, grad_accum=o.grad_accum,
        precision=o.precision, compile=o.compile, fsdp=o.fsdp, workers=o.workers,
    )  # fmt: skip
    fields = {k: v for k, v in fields.items() if v is not None}  # None: TrainConfig's default
    fields.update(overrides)
    if o.steps is not None:
        steps = o.steps
    elif o.epochs is not None:
        steps = max(1, math.ceil(o.epochs * len(data) / fields["batch_size"]))  # type: ignore[arg-type]
    else:
        steps = default_steps(fields["batch_size"]) if callable(default_steps) else default_steps
    from masklab.train import TrainConfig

    cfg = TrainConfig(steps=steps, **fields)
    if o.minutes is not None:
        budget = o.minutes * 60
        deadline = o.started + budget - min(1.0 + EXIT_SHARE * budget, EXIT_MAX_SECONDS)  # fit returns by then
        per_step = seconds_per_step(model, data, cfg)  # type: ignore[arg-type]
        left = deadline - time.monotonic()
        # A generous step count: the deadline, not the count, ends the run, and the schedule follows the clock.
        steps = max(1, math.ceil(1.2 * left / per_step))
        spent = time.monotonic() - o.started
        print(f"masklab: --minutes {o.minutes:g}: training until the deadline (about {max(1, int(left / per_step))} "
              f"steps; {spent:.1f} s of the budget went to starting, preparing the data and timing steps)")  # fmt: skip
        if left <= per_step:
            print(f"masklab: warning: --minutes {o.minutes:g} leaves no time to train after preparing the data; "
                  "training 1 step", file=sys.stderr)  # fmt: skip
        # The schedule follows the clock (max_seconds); fit stops before the deadline, final checkpoint included.
        cfg = dataclasses.replace(cfg, steps=steps, max_seconds=max(left, 1e-3), deadline=deadline)
    if o.warmup is not None:
        cfg = dataclasses.replace(cfg, warmup_steps=o.warmup)
        if cfg.warmup_steps > cfg.steps // 2 and o.minutes is not None:
            print(f"masklab: warning: --warmup {cfg.warmup_steps} is over half of the {cfg.steps} steps that fit")
    elif warmup is not None:
        cfg = dataclasses.replace(cfg, warmup_steps=warmup(cfg.steps))
    return cfg


def planned_steps(cfg: TrainConfig) -> str:
    """What a recipe says it will train: ``N steps of B``, or with ``--minutes`` (the deadline, not a count,
    ends the run; :func:`train_config` printed the expected count) ``steps of B until the deadline``."""
    if cfg.deadline is not None:
        return f"steps of {cfg.batch_size} until the --minutes deadline"
    return f"{cfg.steps} steps of {cfg.batch_size}"


@contextlib.contextmanager
def locked_run(run: Run) -> Iterator[Run]:
    """Hold ``run``'s lock for a whole recipe, from before its data is read (a second writer is refused at once,
    naming the holder). The lock makes the run directory; if the recipe then fails, the folders it made are
    removed again when they are still empty (a refused start leaves nothing behind)."""
    mine = os.environ.get("RANK", "0") == "0"  # under torchrun rank 0 alone makes (and locks) the run directory
    made = [folder for folder in (run.path, *run.path.parents) if mine and not folder.exists()]
    try:
        with run.lock():
            yield run
    except BaseException:
        for folder in made:  # deepest first; stops at the first one holding something
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def fit_run(run: Run, model: nn.Module, data: TrainData, cfg: TrainConfig, *, model_config: dict,
            resume: bool = False, quiet: bool = False, resumable: bool = True) -> FitResult:  # fmt: skip
    """:func:`masklab.train.fit` into ``run``, then ``RUN/loss.png`` (rank 0 only; a missing matplotlib is a
    note, not an error). ``quiet``: the training loop's stderr (bar, log lines, warnings) is dropped (``--quiet``)."""
    from masklab.train import fit
    from masklab.viz.curves import write_run_loss_plot

    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        result = fit(model, data, cfg, run.path, model_config=model_config, resume=resume, resumable=resumable)
    if os.environ.get("RANK", "0") == "0":
        note = write_run_loss_plot(result.out_dir)
        if note:
            print(note, file=sys.stderr)
    return result


def train_run(
    run: Run,
    model: nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    *,
    model_config: dict,
    recipe: str,
    arguments: Mapping[str, Any],
    sidecars: Mapping[str, Mapping[str, Any]] = {},
    resume: bool = False,
    ignore: tuple[str, ...] = (),
    before_fit: Callable[[], None] | None = None,
) -> FitResult:
    """Train ``model`` into ``run`` holding its lock: a fresh run refuses a directory that holds one; a resume
    must match the recorded config and sidecars (each differing key named, ``config.json`` left untouched;
    a longer ``steps`` is allowed). Then the arguments and sidecars are recorded, ``before_fit`` runs (e.g. to
    save a tokenizer; these three on rank 0 only under torchrun) and :func:`fit_run` trains."""
    from masklab.core.device import resolve_device
    from masklab.nn.cpu_attention_probe import cpu_attention_setting
    from masklab.train.run import RESUME_OVERRIDES

    resolve_device(cfg.device)  # an unavailable device or a bad kernel setting: refused before any file is written
    cpu_attention_setting()
    with run.lock():
        if resume:
            config = {"kind": model_config["kind"], "model": model_config, "train": cfg.to_dict()}
            run.check_resume(config, sidecars, allow=RESUME_OVERRIDES, ignore=ignore)
        else:
            run.check_fresh()
        if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 alone writes the run's files
            run.record_arguments(recipe, arguments)
            for name, values in sidecars.items():
                run.write_sidecar(name, values)
            if before_fit is not None:
                before_fit()
        return fit_run(run, model, data, cfg, model_config=model_config, resume=resume)
