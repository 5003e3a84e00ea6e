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
from pathlib import Path
from typing import TYPE_CHECKING

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

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        else:
            sep = "\t" if self.suffix == ".tsv" else ","
            frame.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False, sep=sep)
        self.rows += len(frame)

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
) -> int:
    """Write ``fn(chunk)`` for every chunk of ``source`` to ``target``; returns the number of rows written.
    ``text`` (a CSV source): ``fn(chunk, text_chunk)``, the same rows read again with every cell as its
    original string."""
    writer = ChunkWriter(target)
    try:
        texts = iter_table_chunks(source, chunk_rows, as_text=True) if text else None
        for chunk in iter_table_chunks(source, chunk_rows):
            first = writer.rows + 1
            args = [chunk.reset_index(drop=True)]
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
