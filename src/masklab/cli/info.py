"""``masklab info RUN_DIR``: :func:`masklab.recipes.run_info.describe_run`."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    parser.description = ("Show a run's model kind and config, training config, step reached, parameter count, "
                          "checkpoint size and dtypes, and the last logged loss. The checkpoint's integrity hash is "
                          "verified.")  # fmt: skip
    parser.add_argument("run_dir", help="directory written by masklab training (config.json + checkpoint)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from masklab.recipes.run_info import describe_run, format_info

    info = describe_run(args.run_dir)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
