"""``masklab probe RUN ...``: linear-probe and k-NN accuracy of frozen features, with baselines.

Dispatched on the run's model kind to ``masklab.apps.<kind>.probe``.
"""

from __future__ import annotations

import argparse

from masklab.commands._common import add_run_data_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe", help="linear-probe and k-NN accuracy of frozen features vs raw-input and random-encoder baselines"
    )
    add_run_data_args(parser, "probe")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int | None:
    from masklab.apps import dispatch

    return dispatch("probe", args)
