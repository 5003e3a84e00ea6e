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


def check_output(output: str | Path, *, data: str | Path | None = None) -> None:
    """A ``ValueError`` for an ``-o`` that :func:`write_embedding` cannot write (not ``.npy``), or must not: the
    ``data`` read (``--data``) or a run folder's own file, for ``output`` and the index CSV beside it."""
    from masklab.recipes.common import check_outputs, check_writable

    if Path(output).suffix != ".npy":
        raise ValueError(f"-o {output}: features are written as .npy")
    check_outputs({"-o": output, "-o (its row index)": index_path(output)}, [("--data", data)], "embed")
    check_writable(output)


def source_files(sources: Sequence[str]) -> list[str]:
    """The files the rows were read from: a row's source names a file (an image), ``FILE[i]`` (a row of an
    array) or ``FILE:LINE`` (a text record); the names that exist, once each."""
    import re

    names = dict.fromkeys(re.sub(r"(\[\d+\]|:\d+)$", "", s) for s in sources)
    return [n for n in names if n and not n.startswith("builtin:") and Path(n).exists()]


def write_embedding(embedding: Embedding, output: str | Path) -> tuple[Path, Path]:
    """Write ``output`` (``.npy``, ``(N, D)``) and its index CSV beside it (atomic writes); returns both paths.
    Neither may be a file the rows were read from (``ValueError``, nothing written)."""
    from masklab.core.io import atomic_write_bytes
    from masklab.recipes.common import check_outputs

    check_output(output)
    inputs = [("--data", name) for name in source_files(embedding.sources)]
    check_outputs({"-o": output, "-o (its row index)": index_path(output)}, inputs, "embed")
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
    why = "unreadable or smaller than one patch" if what == "image" else "unreadable"
    print(f"masklab: skipped {len(skipped)} {what}{plural} (--skip-bad; {why}): {names}", file=sys.stderr)


def pictures_for_model(images: Any, sources: Sequence[str], channels: int) -> Any:
    """Pictures read with their own channels ``(N, C, H, W)`` (a folder mixing gray and colour files reads as
    3 channels) -> the model's ``channels``; colour pictures given to a gray model become their luma, and that
    is said on stderr, naming them (the first ten). A picture whose three channels are equal was gray."""
    from masklab.data.images import to_channels

    if channels == 1 and images.shape[1] == 3:
        flat = images.flatten(2)  # (N, 3, H * W)
        colour = ~((flat[:, 0] == flat[:, 1]) & (flat[:, 1] == flat[:, 2])).all(dim=1)
        named = [str(sources[i]) for i in colour.nonzero().flatten().tolist()]
        if named:
            shown = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
            print(f"masklab: note: the model takes gray images; {len(named)} colour picture"
                  f"{'s' if len(named) != 1 else ''} converted to gray (luma): {shown}", file=sys.stderr)  # fmt: skip
    return to_channels(images, channels)
