"""Tables: CSV / Parquet readers with input validation, the built-in tables, and the training dataset.

Built-ins (all offline, shipped by PyPI packages; labels are kept for evaluation and are never features):

=============== ============================================= ===========================================
``shuttle``     river ``datasets/shuttle.csv.gz`` (ODDS Shuttle) 49,097 x 9 numeric, label ``anomaly`` (7.15%)
``default``     ISLP ``data/Default.csv``                     10,000 x 3 (student categorical), label ``default``
``breast-cancer`` scikit-learn                                 569 x 30, label ``malignant`` (1 = malignant)
``wine``        scikit-learn                                   178 x 13, label ``target`` (class)
``diabetes``    scikit-learn (raw units, ``scaled=False``)     442 x 10, label ``target`` (progression)
``iris``        scikit-learn                                   150 x 4, label ``target`` (species)
=============== ============================================= ===========================================

``shuttle`` is the embedded default of ``masklab pretrain table``.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from masklab.data import package_file, parse_data_spec

if TYPE_CHECKING:
    import pandas as pd

    from masklab.tokenizers.table import EncodedTable

BUILTINS = ("shuttle", "default", "breast-cancer", "wine", "diabetes", "iris")
DEFAULT_BUILTIN = "shuttle"
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Table:
    """Features (``frame``) plus, optionally, a label column kept aside for evaluation only."""

    frame: pd.DataFrame
    name: str
    labels: pd.Series | None = None

    @property
    def label_name(self) -> str | None:
        return None if self.labels is None else str(self.labels.name)


# --------------------------------------------------------------------------------------------- built-ins
def _sklearn_table(name: str) -> Table:
    import pandas as pd
    from sklearn import datasets

    loaders = {
        "breast-cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
        "diabetes": lambda: datasets.load_diabetes(scaled=False),
    }
    bunch = loaders[name]()
    frame = pd.DataFrame(bunch.data, columns=[str(c) for c in bunch.feature_names])
    if name == "breast-cancer":  # scikit-learn codes malignant as 0; the anomaly label is 1 = malignant
        labels = pd.Series((bunch.target == 0).astype(int), name="malignant")
    else:
        labels = pd.Series(bunch.target, name="target")
    return Table(frame, name, labels)


def load_builtin(name: str) -> Table:
    """One of :data:`BUILTINS` (features + labels)."""
    import pandas as pd

    if name not in BUILTINS:
        raise ValueError(f"unknown built-in table {name!r}; known: {', '.join(BUILTINS)}")
    if name == "shuttle":
        frame = pd.read_csv(package_file("river", "datasets", "shuttle.csv.gz"))
        return Table(frame.drop(columns="anomaly"), name, frame["anomaly"].astype(int))
    if name == "default":
        # Read the CSV directly: ISLP is installed --no-deps, so importing ISLP.data may fail.
        frame = pd.read_csv(package_file("ISLP", "data", "Default.csv", install_hint="pip install --no-deps ISLP"))
        labels = (frame["default"] == "Yes").astype(int).rename("default")
        return Table(frame.drop(columns="default"), name, labels)
    return _sklearn_table(name)


# ------------------------------------------------------------------------------------------------- files
def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def not_utf8(path: Path, err: UnicodeDecodeError) -> ValueError:
    """The error for a CSV that is not UTF-8 (``err`` from reading it), naming the file and the offset of its
    first undecodable byte (0-based; in the decompressed text of a ``.gz``)."""
    import codecs

    decoder, offset, at = codecs.getincrementaldecoder("utf-8")(), 0, err.start
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as fh:
        while block := fh.read(1 << 20):
            pending = len(decoder.getstate()[0])  # bytes of a character cut at the previous block's end
            try:
                decoder.decode(block)
            except UnicodeDecodeError as bad:
                at = offset - pending + bad.start
                break
            offset += len(block)
    return ValueError(f"{path}: not UTF-8 text (byte {at}); re-save it as UTF-8")


def _csv_header(path: Path, sep: str) -> list[str]:
    """The header's column names under ``sep``. A file that reads as one column but whose header and first
    row both split into the same number (>= 2) of fields at another common separator (``;`` ``\t`` ``|``
    ``,``) is refused, naming it: it would otherwise train on one text column of whole lines."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            rows = csv.reader(fh, delimiter=sep)
            header = next(rows, [])
            first = next(rows, [])
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
    if len(header) == 1 and len(first) == 1:
        for other in (";", "\t", "|", ","):
            fields = len(header[0].split(other))
            if other != sep and fields >= 2 and len(first[0].split(other)) == fields:
                shown = {"\t": "tab"}.get(other, repr(other))
                expected = "tab" if sep == "\t" else "comma"
                raise ValueError(f"{path}: reads as one column {header[0]!r}, but its lines split at {shown} "
                                 f"into {fields} fields; {_suffix(path)} files are {expected}-separated "
                                 "here: save it with that separator (or as Parquet)")  # fmt: skip
    return header


def read_table_file(path: str | Path, *, as_text: bool = False) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.csv.gz``, ``.tsv``, ``.txt``) or Parquet file into a DataFrame.

    ``as_text=True`` keeps every CSV cell as its original string ("" for an empty cell, "NA" stays "NA"), so
    a writer can reproduce observed cells exactly; which cells are missing comes from the default read.
    An empty file, a header without rows, an empty or duplicate column name and an unknown extension are
    errors naming the file.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    suffix = _suffix(path)
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    if suffix in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises many types for a bad file; the path matters most
            raise ValueError(f"{path}: cannot read as Parquet ({err})") from err
        header = [str(c) for c in frame.columns]
    elif suffix in CSV_SUFFIXES:
        sep = "\t" if suffix == ".tsv" else ","
        header = _csv_header(path, sep)
        if not header:
            raise ValueError(f"{path} has no header line (empty file)")
        options = dict(dtype=str, keep_default_na=False) if as_text else {}
        try:
            frame = pd.read_csv(path, sep=sep, **options)
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path} is empty (no header line)") from err
        except pd.errors.ParserError as err:
            raise ValueError(f"{path}: malformed CSV ({err})") from err
        except UnicodeDecodeError as err:
            raise not_utf8(path, err) from None
    else:
        raise ValueError(f"{path}: unknown table format {suffix!r}; use {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}")
    blank = [i + 1 for i, name in enumerate(header) if not str(name).strip()]
    if blank:
        raise ValueError(f"{path}: column(s) at position {blank} have no name in the header")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate column name(s) {duplicates} in the header")
    if len(frame) == 0:
        raise ValueError(f"{path} has a header but no data rows")
    frame.columns = header
    return frame


def split_columns(frame: pd.DataFrame, *, exclude: tuple[str, ...] = (), label: str | None = None) -> Table:
    """Drop ``exclude`` columns (ids, leaks) and move ``label`` aside; unknown names are errors."""
    columns = list(frame.columns)
    wanted = [*exclude, *([label] if label else [])]
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise ValueError(f"column(s) {unknown} named by --exclude/--label are not in the table (columns: {columns})")
    labels = frame[label] if label else None
    return Table(frame.drop(columns=wanted), "", labels)


def load_table(spec: str, *, exclude: tuple[str, ...] = (), label: str | None = None) -> Table:
    """``builtin:NAME`` or a CSV/Parquet path -> :class:`Table`. A built-in's own label is used unless
    ``label`` names another column; ``exclude`` drops feature columns either way."""
    parsed = parse_data_spec(spec, known_builtins=BUILTINS)
    if parsed.builtin is not None:
        table = load_builtin(parsed.builtin)
        name = table.label_name
        frame = table.frame if table.labels is None or name is None else table.frame.assign(**{name: table.labels})
        split = split_columns(frame, exclude=exclude, label=label or table.label_name)
        return Table(split.frame, parsed.builtin, split.labels)
    assert parsed.path is not None  # parse_data_spec gives a builtin or a path
    split = split_columns(read_table_file(parsed.path), exclude=exclude, label=label)
    return Table(split.frame, str(parsed.path), split.labels)


# ---------------------------------------------------------------------------------------- training data
class TableTrainData:
    """An :class:`~masklab.tokenizers.table.EncodedTable` as :class:`masklab.train.TrainData`.

    ``get_batch`` returns ``{"values", "categories", "missing"}`` rows of the table (CPU tensors); the masking
    is the model's job (it draws from the same generator), so there is no augmentation here.
    """

    def __init__(self, encoded: EncodedTable) -> None:
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.encoded)

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {
            "values": self.encoded.values[indices],
            "categories": self.encoded.categories[indices],
            "missing": self.encoded.missing[indices],
        }


# ------------------------------------------------------------------------------------ validation cells
class HeldOutCells:
    """A seeded ``fraction`` of the observed cells, hidden from training and used to pick the best step.

    ``train`` is the table with those cells turned missing (what the model trains on); :meth:`loss` is the
    model's mean error on them when it sees every other observed cell of their row (as at imputation time),
    over at most ``max_rows`` rows (a fixed seeded subset) to keep the check cheap on large tables.
    """

    def __init__(self, encoded: EncodedTable, fraction: float, seed: int, max_rows: int = 2048) -> None:
        from masklab.tokenizers.table import EncodedTable

        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
        generator = torch.Generator().manual_seed(seed)
        held = (torch.rand(encoded.missing.shape, generator=generator) < fraction) & ~encoded.missing  # (N, C)
        self.train = EncodedTable(encoded.values, encoded.categories, encoded.missing | held)
        rows = held.any(dim=1).nonzero().squeeze(1)
        if len(rows) > max_rows:
            rows = rows[torch.randperm(len(rows), generator=generator)[:max_rows]].sort().values
        self.rows = rows
        self.held = held[rows]  # (R, C)

    def __len__(self) -> int:
        """Number of held-out cells checked."""
        return int(self.held.sum())

    @torch.no_grad()
    def loss(self, model) -> float:
        """Mean cell error on the held-out cells (``TableMAE.cell_errors``: squared error or NLL / cross-entropy)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        values = self.train.values[self.rows].to(device)
        categories = self.train.categories[self.rows].to(device)
        hidden = self.train.missing[self.rows].to(device)
        errors = model.cell_errors(model(values, categories, hidden), values, categories)  # (R, C)
        model.train(was_training)
        return float(errors[self.held.to(device)].mean())
