"""``masklab pretrain <kind> ...``: masked pretraining, one module per kind (only the chosen one is imported)."""

from __future__ import annotations

import argparse
import importlib

from masklab.cli import first_positional

# kind -> (module under masklab.cli, one-line help)
KINDS: dict[str, tuple[str, str]] = {
    "mae": ("pretrain_mae", "Masked autoencoder (MAE) on images"),
    "mlm": ("pretrain_mlm", "BERT masked language modeling on text"),
    "clm": ("pretrain_clm", "GPT causal language modeling on text"),
    "table": ("pretrain_table", "Tabular masked autoencoder (TableMAE) on CSV / Parquet / built-in tables"),
    "series": ("pretrain_series", "Masked patch transformer (PatchTST) on variable-length time series"),
}


def register(parser: argparse.ArgumentParser, name: str, rest: list[str]) -> None:
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    chosen = first_positional(rest)
    for kind, (module, help_text) in KINDS.items():
        sub = kinds.add_parser(kind, help=help_text, description=help_text)
        if kind == chosen:
            importlib.import_module(f"masklab.cli.{module}").register(sub, kind, rest[rest.index(kind) + 1 :])
