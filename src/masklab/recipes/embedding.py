"""What ``embed`` returns for any run: the features ``(N, D)`` float32 and, row by row, where each came from and
its label; :func:`write_embedding` writes them as ``NAME.npy`` plus ``NAME.index.csv`` (row, source, label), and
``NAME.sha256`` (both files' sha256, in ``sha256sum`` format) so that the two cannot be paired wrongly.

Two files cannot be replaced in one step. So that a reader never pairs an ``.npy`` with the index of another
write (an ``embed`` killed between the two, two at once, a file copied from elsewhere): ``NAME.index.csv`` is
removed first, ``NAME.sha256`` then written for the new pair, then ``NAME.npy``, then ``NAME.index.csv``. A
killed ``embed`` leaves no index (an error for any reader), or a pair that does not match ``NAME.sha256``:
:func:`read_embedding` refuses it naming both files, as ``sha256sum -c NAME.sha256`` (run in their folder) does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INDEX_SUFFIX = ".index.csv"
CHECKSUM_SUFFIX = ".sha256"


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


def checksum_path(output: str | Path) -> Path:
    """``feats.npy`` -> ``feats.sha256`` (beside it): the sha256 of ``feats.npy`` and ``feats.index.csv``."""
    output = Path(output)
    return output.with_name(output.name.removesuffix(".npy") + CHECKSUM_SUFFIX)


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
    check_outputs(_outputs(output), [("--data", data)], "embed")
    check_writable(output)


def _outputs(output: str | Path) -> dict[str, Path]:
    return {"-o": Path(output), "-o (its row index)": index_path(output), "-o (its checksums)": checksum_path(output)}


def source_files(sources: Sequence[str]) -> list[str]:
    """The files the rows were read from: a row's source names a file (an image), ``FILE[i]`` (a row of an
    array) or ``FILE:LINE`` (a text record); the names that exist, once each."""
    import re

    names = dict.fromkeys(re.sub(r"(\[\d+\]|:\d+)$", "", s) for s in sources)
    return [n for n in names if n and not n.startswith("builtin:") and Path(n).exists()]


def write_embedding(embedding: Embedding, output: str | Path) -> tuple[Path, Path]:
    """Write ``output`` (``.npy``, ``(N, D)``) and its index CSV beside it, with ``NAME.sha256`` (the module
    doc: the index is removed first and written last, the checksums before both); returns the ``.npy`` and CSV
    paths. None may be a file the rows were read from (``ValueError``, nothing written)."""
    from masklab.core.io import atomic_write_bytes
    from masklab.recipes.common import check_outputs

    check_output(output)
    inputs = [("--data", name) for name in source_files(embedding.sources)]
    check_outputs(_outputs(output), inputs, "embed")
    buffer = io.BytesIO()
    np.save(buffer, embedding.features)
    npy, csv_path = Path(output), index_path(output)
    files = {npy: buffer.getvalue(), csv_path: index_csv(embedding).encode("utf-8")}
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {path.name}\n" for path, data in files.items())
    csv_path.unlink(missing_ok=True)  # from here until the end no index: never the old one beside the new .npy
    atomic_write_bytes(checksum_path(output), sums.encode("utf-8"))
    atomic_write_bytes(npy, files[npy])
    atomic_write_bytes(csv_path, files[csv_path])
    return npy, csv_path


def read_embedding(output: str | Path) -> Embedding:
    """Read what :func:`write_embedding` wrote to ``output`` (``NAME.npy`` + ``NAME.index.csv``), refusing with
    one ``ValueError`` naming both files a pair that is not one write's: a missing index, files that do not
    match ``NAME.sha256``, or (files written before it existed) a different number of rows."""
    npy, csv_path, sums_path = Path(output), index_path(output), checksum_path(output)
    again = "run masklab embed again"
    if not npy.is_file():
        raise FileNotFoundError(f"{npy} does not exist (masklab embed -o writes it)")
    if not csv_path.is_file():
        raise ValueError(f"{npy} has no row index {csv_path} (an embed stopped while writing?); {again}")
    npy_bytes, csv_bytes = npy.read_bytes(), csv_path.read_bytes()
    if sums_path.is_file():
        lines = re.findall(r"^([0-9a-f]{64}) [ *](.+)$", sums_path.read_text(encoding="utf-8"), re.M)
        # by role, not by name: the three files renamed together still belong together
        recorded = {name.endswith(INDEX_SUFFIX): digest for digest, name in lines}
        wrong = [p.name for p, data, is_index in ((npy, npy_bytes, False), (csv_path, csv_bytes, True))
                 if recorded.get(is_index) != hashlib.sha256(data).hexdigest()]  # fmt: skip
        if wrong:
            raise ValueError(f"{npy} and {csv_path} are not one embed's output ({' and '.join(wrong)} differ from "
                             f"what {sums_path} records: an embed stopped or run twice at once, or a file copied "
                             f"from elsewhere); {again}")  # fmt: skip
    try:
        features = np.load(io.BytesIO(npy_bytes), allow_pickle=False)
        rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"))))
    except (ValueError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{npy} / {csv_path}: not an embedding ({err}); {again}") from None
    body = rows[1:]
    if rows[:1] != [["row", "source", "label"]] or any(len(r) != 3 or r[0] != str(i) for i, r in enumerate(body)):
        raise ValueError(f"{csv_path} is not the row index masklab embed writes (header row,source,label, rows "
                         f"0, 1, ... in order); {again}")  # fmt: skip
    if features.ndim != 2 or features.shape[0] != len(body):
        raise ValueError(f"{npy} holds {features.shape[0] if features.ndim else 0} rows but {csv_path} indexes "
                         f"{len(body)}: not one embed's output; {again}")  # fmt: skip
    return Embedding(features, tuple(r[1] for r in body), tuple(r[2] for r in body))


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
