"""What ``embed`` returns for any run: the features ``(N, D)`` float32 and, row by row, where each came from and
its label; :func:`write_embedding` writes them as ``NAME.npy`` plus ``NAME.index.csv`` (row, source, label)."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_SUFFIX = ".index.csv"


@dataclass(frozen=True)
class Embedding:
    """``features (N, D)`` float32; ``sources[i]`` names row i's input (a file path, ``data[i]`` for the i-th
    document / table row of ``data``); ``labels[i]`` its class name, ``""`` when the data has no labels."""

    features: np.ndarray
    sources: tuple[str, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        n = self.features.shape[0]
        if len(self.sources) != n or len(self.labels) != n:
            raise ValueError(f"{n} feature rows but {len(self.sources)} sources and {len(self.labels)} labels")

    @classmethod
    def of(cls, features: np.ndarray, sources: Sequence[str], labels: Sequence[Any] | None,
           names: Sequence[str] = ()) -> Embedding:  # fmt: skip
        """From integer labels (indices into ``names`` when given) or ``None`` (no labels)."""
        if labels is None:
            text = ("",) * features.shape[0]
        else:
            text = tuple(str(names[int(v)]) if names else str(v) for v in labels)
        return cls(np.ascontiguousarray(features, dtype=np.float32), tuple(str(s) for s in sources), text)


def index_path(output: str | Path) -> Path:
    """``feats.npy`` -> ``feats.index.csv`` (beside it)."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".npy") + INDEX_SUFFIX)


def index_csv(embedding: Embedding) -> str:
    """The index as CSV text: header ``row,source,label``, one line per feature row, in the array's order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "source", "label"])
    for i, (source, label) in enumerate(zip(embedding.sources, embedding.labels, strict=True)):
        writer.writerow([i, source, label])
    return buffer.getvalue()


def check_output(output: str | Path) -> None:
    """A ``ValueError`` for an ``-o`` that :func:`write_embedding` cannot write (not ``.npy``)."""
    if Path(output).suffix != ".npy":
        raise ValueError(f"-o {output}: features are written as .npy")


def write_embedding(embedding: Embedding, output: str | Path) -> tuple[Path, Path]:
    """Write ``output`` (``.npy``, ``(N, D)``) and its index CSV beside it (atomic writes); returns both paths."""
    from masklab.core.io import atomic_write_bytes

    check_output(output)
    buffer = io.BytesIO()
    np.save(buffer, embedding.features)
    npy = atomic_write_bytes(output, buffer.getvalue())
    csv_path = atomic_write_bytes(index_path(output), index_csv(embedding).encode("utf-8"))
    return npy, csv_path


def note_skipped(skipped: Sequence[str], what: str = "file") -> None:
    """Say once, on stderr, how many inputs a ``--skip-bad`` read left out and name them (the first ten)."""
    if not skipped:
        return
    names = ", ".join(str(s) for s in skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
    plural = "s" if len(skipped) != 1 else ""
    print(f"masklab: skipped {len(skipped)} unreadable {what}{plural} (--skip-bad): {names}", file=sys.stderr)
