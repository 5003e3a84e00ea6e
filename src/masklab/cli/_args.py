"""Argument helpers shared by the subcommands: the training options of every ``pretrain <kind>``, the
run-dispatched commands' options, and small argument types. Standard library only (``--help`` stays fast)."""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

# TrainOptions field names (masklab.recipes.common.TrainOptions); kept here so --help imports no torch.
TRAIN_FIELDS = (
    "steps", "epochs", "minutes", "batch_size", "lr", "min_lr", "warmup", "weight_decay", "grad_clip", "seed",
    "device", "log_every", "ckpt_every", "grad_accum", "precision", "compile", "fsdp", "grad_checkpointing",
    "workers",
)  # fmt: skip


def parse_hw(text: str, expected: str) -> tuple[int, int]:
    """``"28"`` or ``"32x48"`` -> ``(H, W)`` of positive ints; ``ArgumentTypeError`` saying ``expected`` otherwise."""
    try:
        parts = [int(p) for p in text.lower().replace("x", " ").split()]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return parts[0], parts[-1]


def names(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


DOC_PER_HELP = (
    "a .txt's documents: file = each file is one, line = each non-blank line is one, auto = file in "
    "a folder, line for one .txt"
)
TOKENIZER_KIND_HELP = "a tokenizer trained on --data: wordpiece (BERT's), bpe (byte-level) or char"


def add_train_args(parser: argparse.ArgumentParser, *, steps: Any, batch_size: Any, lr: Any, min_lr: Any = 0,
                   weight_decay: Any = 0.05, warmup: Any = 0, log_every: Any = 10,
                   ckpt_every: Any = 200) -> None:  # fmt: skip
    """Budget, optimiser, run-directory and engine options. Every default is ``None`` (= the recipe's default
    for the kind, shown in the help), so the options a user gave are exactly the ones that are not None:
    ``--resume`` compares those against the recorded run. Their ranges are checked in one place for every kind
    (:func:`masklab.recipes.common.check_numbers`)."""
    budget = parser.add_argument_group("budget (pick one)")
    budget.add_argument("--steps", type=int, help=f"optimizer steps (default {steps})")
    budget.add_argument("--epochs", type=float, help="passes over the training data (default: --steps's default)")
    budget.add_argument("--minutes", type=float,
                        help="wall-clock budget for the whole command, data preparation included: steps are timed "
                        "on this machine and training stops in time to save and exit (default: none)")  # fmt: skip
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--batch-size", type=int, help=f"global batch (default {batch_size})")
    opt.add_argument("--lr", type=float, help=f"peak AdamW learning rate (default {lr})")
    opt.add_argument("--min-lr", type=float, help=f"end of the cosine schedule (default {min_lr})")
    opt.add_argument("--warmup", type=int, help=f"linear warmup steps (default {warmup})")
    opt.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {weight_decay})")
    opt.add_argument("--grad-clip", type=float, help="gradient norm clip (default 1.0)")
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True, help="run directory to write (or continue with --resume)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its last checkpoint with its recorded arguments; options "
                     "given again must match them (a larger --steps extends the run)")  # fmt: skip
    run.add_argument("--seed", type=int, help="seed of the initial weights, batches and masks (default 0)")
    run.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    run.add_argument("--log-every", type=int, help=f"steps between metrics records (default {log_every})")
    run.add_argument("--ckpt-every", type=int,
                     help=f"steps between checkpoints; the last is always saved (default {ckpt_every})")  # fmt: skip
    engine = parser.add_argument_group("engine")
    engine.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step (default 1)")
    engine.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                        help="auto = bf16 autocast on CUDA; on CPU bf16 only where a timed step says it pays "
                        "(native bf16 GEMMs), else fp32; fp16 adds a GradScaler (default auto)")  # fmt: skip
    engine.add_argument("--compile", action="store_true", default=None,
                        help="torch.compile the training step (default off)")  # fmt: skip
    engine.add_argument("--fsdp", action="store_true", default=None,
                        help="under torchrun: shard the model (FSDP2) instead of DDP (default off)")  # fmt: skip
    engine.add_argument("--grad-checkpointing", action="store_true", default=None,
                        help="recompute activations (saves memory; default off)")  # fmt: skip
    engine.add_argument("--workers", type=int,
                        help="processes that build batches ahead of the step (DataLoader workers; results do not "
                        "depend on it; default 0), and that tokenise text --data on first use (there the default "
                        "is one per core)")  # fmt: skip


def check_out(out: str) -> None:
    """``--out`` must be a directory this process can create or write (``ValueError`` naming it otherwise),
    checked before any data is read."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file, not a run directory; choose another --out")
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"--out {path}: {existing} is a file, not a directory")
    try:  # creating is the only true test: root passes os.access on a read-only mount or in /proc
        os.rmdir(tempfile.mkdtemp(prefix=".masklab-check-", dir=existing))
    except OSError as e:
        raise ValueError(f"--out {path}: cannot create a directory in {existing} ({e.strerror or e})") from None


def pretrain_call(recipe, args: argparse.Namespace, fields: tuple[str, ...]) -> Any:
    """Call ``recipe(out, **given, train=TrainOptions(**given train options), resume=...)`` with the options the
    user gave (not None). On ``--resume`` the run's recorded arguments fill the ones not given. The numbers are
    checked (:class:`~masklab.recipes.common.TrainOptions`) and ``--out`` too before any data is read."""
    from masklab.recipes.common import TooFewExamplesError, TrainOptions, check_numbers
    from masklab.train.run import ResumeMismatchError, Run

    given = {k: getattr(args, k) for k in fields if getattr(args, k, None) is not None}
    train = {k: getattr(args, k) for k in TRAIN_FIELDS if getattr(args, k, None) is not None}
    check_numbers(train)
    check_out(args.out)
    changed: list[str] = []
    if args.resume:
        _check_resume_steps(args.out, train.get("steps"))
        recorded = Run(args.out).recorded_arguments()
        changed = [f"--{k.replace('_', '-')} {v} (recorded {recorded[k]})" for k, v in given.items()
                   if k in recorded and _json(recorded[k]) != _json(v)]  # fmt: skip
        recorded_train = recorded.pop("train", {}) or {}
        if any(k in train for k in ("steps", "epochs", "minutes")):  # a new budget replaces the recorded one
            recorded_train = {k: v for k, v in recorded_train.items() if k not in ("steps", "epochs", "minutes")}
        given = {**{k: v for k, v in recorded.items() if k in fields}, **given}
        train = {**recorded_train, **train}
    options = TrainOptions(**train, **({"started": args.started_at} if hasattr(args, "started_at") else {}))
    try:
        return recipe(args.out, **given, train=options, resume=args.resume)
    except ResumeMismatchError as err:  # name the flags behind the differing keys
        if not changed:
            raise
        raise ValueError(f"{err}; flags given that differ from the run's arguments: {', '.join(changed)}") from None
    except TooFewExamplesError as err:
        import inspect

        data = given.get("data") or inspect.signature(recipe).parameters["data"].default
        raise ValueError(f"--data {data}: {err}") from None
    except ValueError as err:  # a model config's own check names its field: name the flag that set it
        text = str(err)
        for field in given:
            text = re.sub(rf"(^|: |; ){field} must", rf"\1--{field.replace('_', '-')} must", text)
        if text == str(err):
            raise
        raise ValueError(text) from None


def _json(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists), to compare given flags with recorded arguments."""
    return json.loads(json.dumps(value, default=str))


# Flags that shape how raw text is read and tokenised: a prepared folder (masklab prepare) has fixed them.
PREPARED_FIXES = ("tokenizer_kind", "vocab_size", "doc_per", "text_field", "cased")


def check_prepared_flags(args: argparse.Namespace) -> None:
    """``--data PREPARED`` with a flag the folder already fixed (``--vocab-size`` ...) is refused naming them:
    they were ignored, yet recorded as the run's arguments."""
    from masklab.data.shards.format import is_prepared

    data = getattr(args, "data", None)
    if data is None or not is_prepared(data):
        return
    given = [f"--{k.replace('_', '-')}" for k in PREPARED_FIXES if getattr(args, k, None) not in (None, False)]
    if given:
        them = "it" if len(given) == 1 else "them"
        raise ValueError(f"--data {data} is prepared (masklab prepare): its tokenizer and documents are fixed, so "
                         f"{', '.join(given)} would do nothing; leave {them} out")  # fmt: skip


def _check_resume_steps(out: str, steps: int | None) -> None:
    """``--resume --steps N`` below the step the checkpoint holds: refused before any data is read."""
    from masklab.train.checkpoint import CHECKPOINT_NAME
    from masklab.train.interrupt import held_step

    held = held_step(Path(out) / CHECKPOINT_NAME)
    if steps is not None and held is not None and held > steps:
        raise ValueError(f"--steps {steps}: {Path(out) / CHECKPOINT_NAME} is already at step {held}; resume with "
                         f"--steps above {held} (or --minutes), or leave it out to keep the run's budget")  # fmt: skip


def add_run_data_args(parser: argparse.ArgumentParser, command: str) -> None:
    """Options of ``embed``, ``finetune`` and ``probe`` (dispatched on the run's model kind)."""
    parser.add_argument("run", metavar="RUN", help="training run directory (holds config.json + checkpoint)")
    parser.add_argument("--data", default=None, help="dataset: a path, or builtin:NAME (default: the run's data)")
    parser.add_argument("--batch-size", type=int, default=None, help="examples per step (default: per model family)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    if command == "embed":
        parser.add_argument("-o", "--output", required=True,
                            help="output .npy file (N, D); beside it NAME.index.csv (row, source, label) and "
                            "NAME.sha256 (both files' sha256: masklab.recipes.read_embedding, or sha256sum -c in "
                            "their folder, refuses a pair from two different runs of embed)")  # fmt: skip
    if command == "finetune":
        parser.add_argument("--task", default="classify", help="downstream task (default: classify)")
        parser.add_argument(
            "--steps", type=int, default=None, help="optimizer steps (default: the family's, printed at the start)"
        )
        parser.add_argument(
            "--epochs",
            type=float,
            default=None,
            help="passes over the data instead of --steps (images, text; default: per family)",
        )
        parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per family)")
        parser.add_argument("--augment", default=None, metavar="NAME:F[,...]",
                            help="masking augmentation of the training inputs: mask:F (images: F of the patches "
                            "zeroed; text: F of the tokens -> [MASK]), images cutout:F / erase:P, text tokendrop:F; "
                            "comma-separated to compose")  # fmt: skip
        parser.add_argument("--out", default=None, help="fine-tuned model folder (default: RUN/finetune)")
    if command == "probe":
        parser.add_argument("--max-examples", type=int, default=None,
                            help="use at most this many examples, train and test together (default: all)")  # fmt: skip
