"""The ``masklab`` command line: argparse only; every subcommand parses its options and calls a recipe
(:mod:`masklab.recipes`).

The top-level parser lists the subcommands from :data:`COMMANDS` (name -> module, one-line help) without
importing them; only the chosen subcommand's module is imported to add its arguments (``masklab pretrain mae
--help`` loads no other modality). A command module has ``register(parser, name, rest)``: it adds its
arguments to ``parser`` and sets ``func`` (called with the parsed namespace, returns an exit code or None);
``rest`` is the argv after the command name (``pretrain`` uses it to pick its kind). Errors are handled once,
in :func:`main`: user errors print ``masklab: error: ...`` and exit 2, Ctrl-C exits 130; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from masklab import __version__

_PACKAGE = Path(__file__).resolve().parent.parent  # src/masklab

# name -> (module under masklab.cli, one-line help). Add a command: a module with register(), and a row here.
COMMANDS: dict[str, tuple[str, str]] = {
    "attention": ("attention", "attention maps of a trained encoder on one input (token heatmaps, or [CLS] "
                  "rollout on an image)"),
    "edit": ("segment", "mask-guided edits: cut out / blur / replace the background, remove the subject (MAE fill)"),
    "embed": ("downstream", "features of a trained run for every example of a dataset (no random masking) + a row "
              "index CSV"),
    "export-hf": ("export", "write an mae / mlm / clm run as a Hugging Face folder (from_pretrained loads it)"),
    "fill": ("text", "predict the [MASK] tokens of a text with a trained MLM"),
    "finetune": ("downstream", "fine-tune a pretrained run on a labelled task"),
    "forecast": ("series", "forecast the next H steps of series with a series run (held-out tail MSE first)"),
    "generate": ("text", "continue text prompts with a trained causal LM run"),
    "impute": ("table", "fill missing cells of a CSV / Parquet table (or NaN steps of series) with a trained run"),
    "info": ("info", "describe a training run directory"),
    "inpaint": ("images", "fill the white region of MASK.png in IMAGE with an MAE run"),
    "masks": ("masks", "render example masks of each generator as a PNG"),
    "perplexity": ("text", "next-token loss / perplexity of a causal LM run on text"),
    "predict": ("predict", "apply a fine-tuned image, text or series classifier to new inputs (CSV of class "
                "probabilities)"),
    "prepare": ("prepare", "tokenise a text corpus once into memory-mapped shards (for pretrain mlm / clm --data)"),
    "pretrain": ("pretrain", "masked pretraining (mae, mlm, clm, table, series)"),
    "probe": ("downstream", "linear-probe and k-NN accuracy of frozen features vs raw-input and random-encoder "
              "baselines"),
    "reconstruct": ("images", "grid of original | masked | reconstruction | reconstruction + visible (MAE runs)"),
    "segment": ("segment", "train a subject/background head on an MAE run (segment train RUN) or predict a mask"),
    "score": ("table", "anomaly scores (masked reconstruction error) of a table's rows"),
    "serve": ("serve", "a local web page to try trained runs (paint a mask, fill [MASK], generate, score a table)"),
}  # fmt: skip


class UsageError(ValueError):
    """Bad command-line input; printed as ``masklab: error: ...`` with exit code 2, no traceback."""


def first_positional(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option (the chosen subcommand), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for ``argv``: every subcommand listed, only the chosen one's arguments added."""
    parser = argparse.ArgumentParser(
        prog="masklab",
        description="Masked modeling for images, text, tables and time series (True = masked/hidden everywhere).",
    )
    parser.add_argument("--version", action="version", version=f"masklab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = first_positional(argv)
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            rest = list(argv)[list(argv).index(name) + 1 :]
            importlib.import_module(f"masklab.cli.{module}").register(sub, name, rest)
            _state_defaults(sub)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)parser ``argv`` chose: ``pretrain mae ...`` -> the parser of ``masklab pretrain mae``."""
    for token in argv:
        subs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if subs is None:
            break
        if token in subs.choices:
            parser = subs.choices[token]
    return parser


def _state_defaults(parser: argparse.ArgumentParser) -> None:
    """Append ``(default X)`` to the help of every option of ``parser`` (and its subcommands) that has a
    default and does not say it already, so ``--help`` states every default (switches are off unless given)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _state_defaults(sub)
            continue
        silent = action.help == argparse.SUPPRESS or "default" in (action.help or "")
        takes_value = bool(action.option_strings) and action.nargs != 0 and not action.required
        if takes_value and not silent and action.default not in (None, "", [], argparse.SUPPRESS):
            action.help = f"{action.help} (default %(default)s)" if action.help else "(default %(default)s)"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return its exit code."""
    started = time.monotonic()  # a --minutes budget counts from here
    argv = list(sys.argv[1:] if argv is None else argv)
    shown_before = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        # masklab's own warnings as one line (``masklab: warning: ...``), without the source line Python
        # shows; other libraries' as before (their file says where they come from).
        if Path(filename).resolve().is_relative_to(_PACKAGE):
            print(f"masklab: warning: {message}", file=sys.stderr if file is None else file)
        else:
            shown_before(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():  # restores the previous printer when the command ends
        warnings.showwarning = show
        return _main(argv, started)


def _main(argv: list[str], started: float) -> int:
    try:
        parser = build_parser(argv)
        args, extras = parser.parse_known_args(argv)
        if extras:  # as parse_args says it, but with the usage of the command that was typed, not masklab's
            _chosen_parser(parser, argv).error(f"unrecognized arguments: {' '.join(extras)}")
        if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports (errors still reach stderr)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
        if getattr(args, "func", None) is None:
            parser.print_help()
            return 0
        args.started_at = started
        code = args.func(args)
    except KeyboardInterrupt as err:  # training says which step its checkpoint holds
        print(f"masklab: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `masklab info RUN --json | head`: the reader left; exit quietly like other Unix tools.
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError, FloatingPointError) as err:
        # User-facing errors (bad values, missing files, a locked run, a full disk, a diverged loss) carry their
        # own clear message; tracebacks are for bugs.
        print(f"masklab: error: {_message(err)}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def _message(err: BaseException) -> str:
    """One line for ``err``: an ``OSError`` as ``PATH: reason`` (not ``[Errno 28] ...``)."""
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        where = f"{err.filename}: " if err.filename is not None else ""
        where += f"{err.filename2}: " if err.filename2 is not None else ""
        return f"{where}{err.strerror}"
    return str(err) or type(err).__name__


def run() -> None:
    """Console entry point (``masklab ...``, ``python -m masklab ...``): :func:`main`, then exit with its code;
    under torchrun through :func:`masklab.train.distributed.exit_worker` (skips a teardown that can abort)."""
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # checked here too: plain runs never import torch for this
        from masklab.train.distributed import exit_worker

        exit_worker(code)
    raise SystemExit(code)
