"""CLI subcommands, one module each; see :mod:`masklab.cli` for the contract."""
