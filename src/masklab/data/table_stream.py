"""Tables bigger than memory: read a CSV in chunks of rows or a Parquet file one row group at a time, apply a
function to each chunk, and write the result as it comes (so ``impute`` and ``score`` run in flat memory).

The output is written to a temporary file beside the target and renamed at the end (a killed run leaves no
half table). Masked-table inference is row-independent (fixed mask patterns), so chunked results equal the
whole-file ones; CSV dtypes are inferred per chunk, as ``pandas.read_csv(chunksize=...)`` does, so a writer
that must keep observed cells exactly reads each chunk a second time as text (``map_table(..., text=True)``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from masklab.data.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, _csv_header, _suffix, not_utf8

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.parquet as pq


def iter_table_chunks(path: str | Path, chunk_rows: int = 100_000, *, as_text: bool = False) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_rows`` rows (CSV) or one Parquet row group each (split further when a
    group holds more than ``chunk_rows``); every chunk keeps the file's row order. ``as_text`` (CSV only):
    every cell its original string, as :func:`masklab.data.tables.read_table_file` reads it with ``as_text``."""
    import pandas as pd

    if chunk_rows < 1:
        raise ValueError(f"--chunk-rows must be >= 1, got {chunk_rows}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = _suffix(path)
    if suffix in PARQUET_SUFFIXES and as_text:
        raise ValueError(f"{path}: a Parquet file has typed cells, not text")
    if suffix in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(path)
        except Exception as err:  # pyarrow raises many types for a bad file; the path matters most
            raise ValueError(f"{path}: cannot read as Parquet ({err})") from err
        for group in range(reader.num_row_groups):
            frame = reader.read_row_group(group).to_pandas()
            for start in range(0, len(frame), chunk_rows):
                yield frame.iloc[start : start + chunk_rows]
    elif suffix in CSV_SUFFIXES:
        sep = "\t" if suffix == ".tsv" else ","
        _csv_header(path, sep)  # refuses a file written with another separator, naming it
        options = dict(dtype=str, keep_default_na=False) if as_text else {}
        try:
            yield from pd.read_csv(path, sep=sep, chunksize=chunk_rows, **options)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path} has no header line (empty file)") from err
        except UnicodeDecodeError as err:
            raise not_utf8(path, err) from None
    else:
        raise ValueError(f"{path}: unknown table format {suffix!r} (use .csv, .tsv or .parquet)")


@dataclass
class ColumnPlan:
    """One column of a whole file, as reading it at once would type it: ``dtype``; ``missing`` (any empty
    cell); ``whole`` (every observed number a whole number); ``values`` (a bool column's observed
    values (True, False) by their category key, as :func:`masklab.tokenizers.table.category_key` writes it)."""

    dtype: Any
    missing: bool = False
    whole: bool = True
    values: dict[str, Any] = field(default_factory=dict)


def _kind(column: pd.Series) -> str:
    import pandas as pd

    observed = column.dropna()
    if observed.empty:
        return "empty"
    if pd.api.types.is_bool_dtype(column.dtype) and not isinstance(column.dtype, pd.CategoricalDtype):
        return "bool"
    if pd.api.types.is_integer_dtype(column.dtype):
        return "int"
    if pd.api.types.is_float_dtype(column.dtype):
        return "float"
    if pd.api.types.is_string_dtype(column.dtype):
        if all(isinstance(v, str) for v in observed):
            return "text"
        if all(isinstance(v, (bool, np.bool_)) for v in observed):
            return "bool"
    return f"other {column.dtype}"


def plan_columns(path: str | Path, chunk_rows: int = 100_000) -> dict[str, ColumnPlan]:
    """Read ``path`` chunk by chunk (flat memory) and type every column as the whole file read at once types it,
    so each chunk can be cast to one type per column (a Parquet file holds one). A column no one type holds
    without changing cells (numbers in one chunk, text in another) is a ValueError naming it and the rows."""

    from masklab.tokenizers.table import category_key

    plans: dict[str, ColumnPlan] = {}
    seen: dict[str, tuple[str, Any, int, int]] = {}  # column -> (kind, dtype, first row, last row)
    first = 1
    for chunk in iter_table_chunks(path, chunk_rows):
        last = first + len(chunk) - 1
        for name in chunk.columns:
            column = chunk[name]
            plan = plans.setdefault(name, ColumnPlan(dtype=None))
            plan.missing = plan.missing or bool(column.isna().any())
            kind = _kind(column)
            if kind == "float":
                observed = column.dropna().to_numpy()
                plan.whole = plan.whole and bool((observed == np.round(observed)).all())
            if kind == "bool" and len(plan.values) < 2:
                for value in column.dropna().tolist():
                    plan.values.setdefault(category_key(value), bool(value))
            if kind == "empty":
                continue
            if name not in seen:
                seen[name] = (kind, column.dtype, first, last)
                continue
            before, dtype, start, end = seen[name]
            numbers = {before, kind} <= {"int", "float"}
            if (before != kind and not numbers) or (kind.startswith("other") and dtype != column.dtype):
                raise ValueError(f"{path}: column {name!r} is {dtype} in data rows {start}-{end} but {column.dtype} "
                                 f"in data rows {first}-{last} (types are read chunk by chunk) and a Parquet file "
                                 "holds one type per column: use a larger --chunk-rows, or a .csv output")  # fmt: skip
            if kind == "float":
                seen[name] = (kind, column.dtype, first, last)
        first = last + 1
    for name, plan in plans.items():
        kind, dtype = seen.get(name, ("empty", np.dtype(np.float64)))[:2]
        if kind == "int" and plan.missing:
            dtype = np.dtype(np.float64)
        elif kind == "bool" and plan.missing:
            dtype = np.dtype(object)
        plan.dtype = dtype
    return plans


def cast_to_plan(chunk: pd.DataFrame, plans: dict[str, ColumnPlan]) -> pd.DataFrame:
    """``chunk`` with every planned column cast to its whole-file dtype."""
    types = {n: plans[n].dtype for n in chunk.columns if n in plans and chunk[n].dtype != plans[n].dtype}
    return chunk.astype(types) if types else chunk


class ChunkWriter:
    """Append DataFrames to a CSV/TSV or Parquet file; :meth:`close` renames the finished file into place."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.suffix = _suffix(self.target)
        if self.suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
            raise ValueError(f"-o {self.target}: unknown output format {self.suffix!r} (use .csv or .parquet)")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.target.parent / f".{self.target.name}.{secrets.token_hex(6)}.tmp"
        self._parquet: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self.suffix in PARQUET_SUFFIXES:
            import pyarrow as pa
            import pyarrow.parquet as pq

            try:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if self._parquet is None:
                    self._parquet = pq.ParquetWriter(self.tmp, table.schema)
                table = table.cast(self._parquet.schema)
            except (pa.ArrowException, ValueError, TypeError) as err:
                raise self._one_type_error(frame, err) from err
            self._parquet.write_table(table)
        else:
            sep = "\t" if self.suffix == ".tsv" else ","
            frame.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False, sep=sep)
        self.rows += len(frame)

    def _one_type_error(self, frame: pd.DataFrame, err: Exception) -> ValueError:
        """A chunk no single type per column holds: name the column, the rows and both types."""
        import pyarrow as pa

        rows = f"rows {self.rows + 1}-{self.rows + len(frame)}"
        schema = self._parquet.schema if self._parquet is not None else None
        for name in frame.columns:
            try:
                column = pa.array(frame[name], from_pandas=True)
                if schema is not None and schema.get_field_index(str(name)) >= 0:
                    column.cast(schema.field(str(name)).type)
            except (pa.ArrowException, ValueError, TypeError):
                before = schema.field(str(name)).type if schema is not None else "one type"
                return ValueError(f"-o {self.target}: column {name!r} is {before} in the rows written before but "
                                  f"{frame[name].dtype} in {rows} ({err}); a Parquet file holds one type per column: "
                                  "use a larger --chunk-rows, or a .csv output")  # fmt: skip
        return ValueError(f"-o {self.target}: cannot write {rows} as Parquet ({err})")

    def close(self) -> Path:
        if self._parquet is not None:
            self._parquet.close()
        os.replace(self.tmp, self.target)
        return self.target

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.tmp.unlink(missing_ok=True)


def map_table(
    source: str | Path,
    target: str | Path,
    fn: Callable[..., pd.DataFrame],
    *,
    chunk_rows: int = 100_000,
    text: bool = False,
    plans: dict[str, ColumnPlan] | None = None,
) -> int:
    """Write ``fn(chunk)`` for every chunk of ``source`` to ``target``; returns the number of rows written.
    ``text`` (a CSV source): ``fn(chunk, text_chunk)``, the same rows read again with every cell as its
    original string. ``plans`` (:func:`plan_columns`): every chunk is cast to the whole file's column types
    before ``fn`` sees it."""
    writer = ChunkWriter(target)
    try:
        texts = iter_table_chunks(source, chunk_rows, as_text=True) if text else None
        for chunk in iter_table_chunks(source, chunk_rows):
            first = writer.rows + 1
            args = [
                chunk.reset_index(drop=True) if plans is None else cast_to_plan(chunk, plans).reset_index(drop=True)
            ]
            if texts is not None:
                args.append(next(texts).reset_index(drop=True))
            try:
                out = fn(*args)
            except ValueError as err:  # name where the chunk sits in the file: its messages count rows from 1
                if str(err).startswith(str(source)):  # already about the file (its columns), not a row
                    raise
                raise ValueError(f"{source}, data rows {first}-{first + len(chunk) - 1} (one chunk; a row number "
                                 f"below counts within it): {err}") from err  # fmt: skip
            writer.write(out)
        if writer.rows == 0:
            raise ValueError(f"{source} has a header but no rows")
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.rows
