"""The ``masklab`` command line.

Every subcommand lives in its own module under :mod:`masklab.commands` and exposes
``register(subparsers)``; those modules import only ``argparse`` at top level and do their heavy imports
(torch, models, data) inside the handler, so ``masklab --help`` and ``masklab --version`` stay instant.
A handler is stored as ``func`` on its parser and receives the parsed ``argparse.Namespace``; it returns
an exit code (``None`` means 0).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from masklab import __version__


class UsageError(ValueError):
    """Bad command-line input; printed as ``masklab: error: ...`` with exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masklab",
        description="Masked modeling for images, text and tables (True = masked/hidden everywhere).",
    )
    parser.add_argument("--version", action="version", version=f"masklab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    import masklab.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"masklab.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports (errors still reach stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        code = args.func(args)
    except BrokenPipeError:
        # `masklab info RUN --json | head`: the reader left; exit quietly like other Unix tools.
        sys.stderr.close()
        return 0
    except (UsageError, FileNotFoundError, ValueError) as err:
        # User-facing errors carry their own clear message; tracebacks are for bugs.
        print(f"masklab: error: {err}", file=sys.stderr)
        return 2
    return 0 if code is None else int(code)


def run() -> None:
    """Console entry point (``masklab ...``, ``python -m masklab ...``): :func:`main`, then exit with its code;
    under torchrun through :func:`masklab.train.distributed.exit_worker` (skips a teardown that can abort)."""
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # checked here too: plain runs never import torch for this
        from masklab.train.distributed import exit_worker

        exit_worker(code)
    raise SystemExit(code)
