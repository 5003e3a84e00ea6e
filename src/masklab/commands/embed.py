"""``masklab embed RUN ...``: features of a trained run for every example of a dataset (no random masking).

Dispatched on the run's model kind to ``masklab.apps.<kind>.embed``.
"""

from __future__ import annotations

import argparse

from masklab.commands._common import add_run_data_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed", help="features of a trained run for every example of a dataset (no random masking)"
    )
    add_run_data_args(parser, "embed")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int | None:
    from masklab.apps import dispatch

    return dispatch("embed", args)
