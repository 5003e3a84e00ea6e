"""``masklab pretrain <kind> ...``: masked pretraining for each modality (see :mod:`masklab.apps`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from masklab.apps import KINDS, app_module

    parser = subparsers.add_parser("pretrain", help="masked pretraining (mae, mlm, clm, table)")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in KINDS:
        module = app_module(kind)
        if module is None or not hasattr(module, "add_pretrain_args"):
            continue
        sub = kinds.add_parser(kind, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_pretrain_args(sub)
        sub.set_defaults(func=module.pretrain)
