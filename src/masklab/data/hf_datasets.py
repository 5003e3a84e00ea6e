"""Hugging Face ``datasets`` folders (``Dataset.save_to_disk``) as ``--data``, read memory-mapped, never copied.

A folder holding ``dataset_info.json`` + ``state.json`` and ``.arrow`` files is one dataset; a folder holding
``dataset_dict.json`` (a saved ``DatasetDict``) is read through its ``train`` split. ``load_from_disk``
memory-maps the Arrow files, so only the rows being read are paged in.

Which column is read:

- text (``prepare``, ``pretrain mlm|clm``): the column named by ``--column`` (``--text-field``); by default a
  string column named ``text`` if there is one, else the only string column. Each row is one document
  (blank and null rows are skipped), in row order.
- images (``pretrain mae``): the column named by ``--column``; by default the only ``Image`` column. A
  ``ClassLabel`` column, when there is exactly one, gives the labels (and class names).

A missing column, a column of the wrong type, or several candidates without ``--column`` is a
``ValueError`` listing every column with its type.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor

from masklab.data.image_files import image_to_array, is_gray
from masklab.data.image_stream import ImageFolderStream, ImageIndex

_OPEN: dict[tuple[str, str | None], Any] = {}  # per process: (root, column) -> dataset (reopened in workers)


def is_hf_dataset(path: str | Path) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    root = Path(path)
    if not root.is_dir():
        return False
    if (root / "dataset_dict.json").is_file():
        return True
    return (root / "dataset_info.json").is_file() and (root / "state.json").is_file() and any(root.glob("*.arrow"))


def open_hf_dataset(path: str | Path):
    """The ``datasets.Dataset`` saved in ``path`` (memory-mapped; a ``DatasetDict`` gives its ``train`` split)."""
    key = (str(Path(path).resolve()), None)
    if key in _OPEN:
        return _OPEN[key]
    try:
        import datasets
    except ModuleNotFoundError as err:
        raise ValueError(
            f"--data {path} is a Hugging Face datasets folder; reading it needs the datasets package "
            "(pip install 'masklab[hf]')"
        ) from err
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise ValueError(
                f"--data {path} is a DatasetDict without a train split (splits: {', '.join(loaded)}); "
                f"pass the split's folder, e.g. --data {Path(path) / next(iter(loaded))}"
            )
        loaded = loaded["train"]
    _OPEN[key] = loaded
    return loaded


def _describe(feature: Any) -> str:
    kind = type(feature).__name__
    return f"{kind}({feature.dtype})" if kind == "Value" else kind


def choose_column(dataset: Any, column: str | None, kind: Literal["text", "image"], source: str | Path,
                  prefer: str | None = None) -> str:  # fmt: skip
    """The column to read (see the module docstring); ``prefer`` is taken when it is a column of ``kind``."""
    import datasets

    def fits(feature: Any) -> bool:
        if kind == "image":
            return isinstance(feature, datasets.Image)
        return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")

    features = dataset.features
    listing = ", ".join(f"{name} ({_describe(f)})" for name, f in features.items())
    wanted = "string" if kind == "text" else "Image"
    if column is not None:
        if column not in features:
            raise ValueError(f"--data {source}: no column {column!r}; the columns are {listing}")
        if not fits(features[column]):
            article = "a string" if kind == "text" else "an Image"
            raise ValueError(f"--data {source}: column {column!r} is not {article} column; the columns are {listing}")
        return column
    candidates = [name for name, f in features.items() if fits(f)]
    if prefer in candidates:
        return str(prefer)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ValueError(f"--data {source} has no {wanted} column; the columns are {listing}")
    raise ValueError(
        f"--data {source} has {len(candidates)} {wanted} columns ({', '.join(candidates)}); pick one with "
        f"--column; the columns are {listing}"
    )


def text_column(path: str | Path, text_field: str | None) -> str:
    """The text column read for ``--column``/``--text-field`` ``text_field`` (``"text"`` = the default rule)."""
    dataset = open_hf_dataset(path)
    given = None if text_field in (None, "text") else text_field
    return choose_column(dataset, given, "text", path, prefer="text")


def iter_hf_texts(path: str | Path, text_field: str | None = "text", batch_rows: int = 1000) -> Iterator[str]:
    """The non-blank documents of the text column, one per row, in row order (``batch_rows`` rows at a time)."""
    column = text_column(path, text_field)
    rows = open_hf_dataset(path).select_columns([column])
    for batch in rows.iter(batch_size=batch_rows):
        for text in batch[column]:
            if text is not None and text.strip():
                yield text


def _image_rows(root: str, column: str):
    """The dataset reduced to ``column`` with images left encoded (``{"bytes", "path"}``), cached per process."""
    key = (root, column)
    if key not in _OPEN:
        import datasets

        _OPEN[key] = open_hf_dataset(root).select_columns([column]).cast_column(column, datasets.Image(decode=False))
    return _OPEN[key]


def _open_value(value: dict[str, Any] | None, name: str):
    """PIL image of one stored ``Image`` value; ``ValueError`` naming ``name`` when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    if value is None or (value.get("bytes") is None and not value.get("path")):
        raise ValueError(f"cannot read image {name}: the row holds no image")
    try:
        img = Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"])
        img.load()
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"cannot read image {name}: {err}") from err
    return img


@dataclass(frozen=True)
class HFImageStream(ImageFolderStream):
    """:class:`ImageFolderStream` whose images are rows ``rows`` of ``column`` in the dataset at ``root``;
    ``paths`` are the display names ``ROOT[row]`` used in error messages."""

    root: str = ""
    column: str = ""
    rows: tuple[int, ...] = ()

    def decode(self, i: int) -> np.ndarray:
        name = self.paths[i]
        img = _open_value(_image_rows(self.root, self.column)[self.rows[i]][self.column], name)
        try:
            return image_to_array(img, self.channels, self.image_size, self.min_side, Path(name))
        finally:
            img.close()

    def subset(self, indices: Tensor) -> HFImageStream:
        keep = indices.tolist()
        labels = None if self.labels is None else self.labels[indices]
        return replace(self, paths=tuple(self.paths[i] for i in keep), rows=tuple(self.rows[i] for i in keep),
                       labels=labels)  # fmt: skip


def hf_image_stream(
    path: str | Path,
    *,
    image_size: tuple[int, int] | None,
    column: str | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
) -> HFImageStream:
    """Index the image column once (each row's header: gray or colour; unreadable rows fail or, with
    ``skip_bad``, are counted) -> a lazily decoded stream. ``image_size`` None keeps the stored size."""
    import datasets
    from PIL import Image, UnidentifiedImageError

    root = str(Path(path).resolve())
    dataset = open_hf_dataset(root)
    column = choose_column(dataset, column, "image", path)
    label_columns = [n for n, f in dataset.features.items() if isinstance(f, datasets.ClassLabel)]
    rows: list[int] = []
    names: list[str] = []
    gray: list[bool] = []
    skipped: list[str] = []
    for start in range(0, len(dataset), 512):
        values = _image_rows(root, column)[start : start + 512][column]
        for row, value in enumerate(values, start=start):
            name = f"{path}[{row}]"
            try:
                if value is None or (value.get("bytes") is None and not value.get("path")):
                    raise ValueError("the row holds no image")
                src = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
                with Image.open(src) as img:
                    gray.append(is_gray(img))
            except (OSError, UnidentifiedImageError, ValueError) as err:
                if not skip_bad:
                    raise ValueError(f"cannot read image {name}: {err}") from err
                skipped.append(name)
                continue
            rows.append(row)
            names.append(name)
    if not rows:
        raise ValueError(f"--data {path}: none of the {len(dataset)} rows of column {column!r} could be read")
    labels: tuple[int, ...] | None = None
    class_names: tuple[str, ...] = ()
    if len(label_columns) == 1:
        all_labels = dataset.select_columns(label_columns)[label_columns[0]]
        labels = tuple(int(all_labels[r]) for r in rows)
        class_names = tuple(dataset.features[label_columns[0]].names)
    index = ImageIndex(f"{path} (column {column})", tuple(names), tuple(gray), labels, class_names, tuple(skipped))
    stream = cast(HFImageStream, HFImageStream.from_index(index, image_size=image_size or (0, 0), channels=channels,
                                                          min_side=min_side))  # fmt: skip
    size: Any = image_size  # None: decode keeps each image's stored size
    return replace(stream, image_size=size, root=root, column=column, rows=tuple(rows))


def materialize(stream: HFImageStream) -> tuple[Tensor, Tensor | None]:
    """Every image decoded into uint8 ``(N, C, H, W)`` (and the labels): the in-memory path (``--workers 0``)."""
    arrays = [stream.decode(i) for i in range(len(stream))]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{stream.name}: images have different sizes {sorted(shapes)[:3]}…; pass an image size")
    return torch.from_numpy(np.stack(arrays)), stream.labels
