"""``masklab impute RUN INPUT -o OUTPUT``: fill the missing cells of a table with a trained table run.

Only missing cells change: for CSV in and CSV out every other cell is written back as its original text.
Columns the run kept out of its features (``table.json``) and ``--exclude`` columns pass through untouched.
Prints how many cells were filled per column. The input file is never written to.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "impute",
        help="fill missing cells of a CSV / Parquet table with a trained table run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", help="run directory of 'masklab pretrain table' (or 'series')")
    parser.add_argument("input", metavar="INPUT", help="CSV or Parquet file with missing cells (empty / NA / NaN)")
    parser.add_argument("-o", "--output", required=True, help="output file (.csv or .parquet); never the input")
    parser.add_argument("--exclude", default="", metavar="COL,...", help="columns to pass through unchanged")
    parser.add_argument("--n-masks", type=int, default=0, help="test-time mask rounds to average (default 0 = plain)")
    parser.add_argument("--handle-unknown", choices=("error", "missing"), default="error",
                        help="a category unseen in training: fail (default) or treat it as missing")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=_run)


def _format(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from masklab.apps import run_kind

    if run_kind(args.run) == "series":  # series runs write .npz (values + lengths)
        from masklab.apps.series import impute

        return impute(args)

    from masklab.apps.table import _names, inference_table
    from masklab.data.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _suffix, read_table_file
    from masklab.estimators import MaskedImputer
    from masklab.tokenizers.table import missing_cells

    source, target = Path(args.input), Path(args.output)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    if target.exists() and target.resolve() == source.resolve():
        raise ValueError(f"-o {target} is the input file; impute never modifies its input, pick another path")
    out_suffix = _suffix(target)
    if out_suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ValueError(f"-o {target}: unknown output format {out_suffix!r} (use .csv or .parquet)")
    table = inference_table(args.run, str(source), exclude=_names(args.exclude))
    features = table.frame
    imputer = MaskedImputer.from_run(
        args.run, n_masks=args.n_masks, handle_unknown=args.handle_unknown, device=args.device
    )
    filled = imputer.transform(features)
    fill = {c: missing_cells(features[c]) for c in features.columns}

    if _suffix(source) in CSV_SUFFIXES and out_suffix in CSV_SUFFIXES:
        out = read_table_file(source, as_text=True)  # original text of every cell
        if len(out) != len(features):
            raise ValueError(f"{source}: rows differ between the text and typed reads ({len(out)} vs {len(features)})")
        for column, rows in fill.items():
            if rows.any():
                out.loc[rows, column] = [_format(v) for v in filled.loc[rows, column]]
        sep = "\t" if out_suffix == ".tsv" else ","
        out.to_csv(target, index=False, sep=sep)
    else:
        out = read_table_file(source)
        for column in features.columns:
            out[column] = filled[column]
        out.to_csv(target, index=False) if out_suffix in CSV_SUFFIXES else out.to_parquet(target, index=False)

    passthrough = [c for c in out.columns if c not in features.columns]
    counts = {column: int(rows.sum()) for column, rows in fill.items()}
    width = max(len("column"), *(len(c) for c in counts))
    print(f"masklab: filled {sum(counts.values())} missing cells of {len(features)} rows: {source} -> {target}")
    print(f"{'column':<{width}}  filled")
    for column, count in counts.items():
        print(f"{column:<{width}}  {count}")
    if passthrough:
        print(f"passed through unchanged (not features): {passthrough}")
    return 0
