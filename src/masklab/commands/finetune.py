"""``masklab finetune RUN ...``: fine-tune a pretrained run on a labelled task.

Dispatched on the run's model kind to ``masklab.apps.<kind>.finetune``.
"""

from __future__ import annotations

import argparse

from masklab.commands._common import add_run_data_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune a pretrained run on a labelled task")
    add_run_data_args(parser, "finetune")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int | None:
    from masklab.apps import dispatch

    return dispatch("finetune", args)
