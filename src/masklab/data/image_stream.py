"""Image folders read lazily: the folder is indexed once (paths, labels, gray/colour; cached as JSON), each
image is decoded, resized and cropped when its batch is built (in DataLoader workers when ``fit`` has
``workers > 0``), and a file is open only while it is decoded, so memory and open files do not grow with
the folder (MAE's ``main_pretrain.py``: a lazy ImageFolder + DataLoader workers).

:class:`ImageFolderStream` gives the same batches as :class:`masklab.data.images.ImageDataset` loaded from
the same folder with the same ``image_size`` (the same per-image decode, the same batched crop + flip).
Layout: ``(B, C, H, W)`` float in [0, 1]; ``labels (B,)`` long.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from masklab.data.image_augment import Augment, ImageBatch, random_resized_crop
from masklab.data.image_files import IMAGE_SUFFIXES, image_to_array, is_gray, open_image, upright

if TYPE_CHECKING:
    import tarfile

INDEX_VERSION = 1


@dataclass(frozen=True)
class ImageIndex:
    """Every readable image under ``root`` (sorted), labels from first-level subfolders, and what was skipped."""

    root: str
    paths: tuple[str, ...]
    gray: tuple[bool, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...]
    skipped: tuple[str, ...]


def index_image_folder(root: str | Path, *, cache: str | Path | None = None, skip_bad: bool = False,
                       min_side: int = 1) -> ImageIndex:  # fmt: skip
    """Index ``root`` once: open each file's header (closed at once) for its colour mode. A header that cannot
    be read, or an image smaller than ``min_side`` (one patch), is a ``ValueError`` naming the file, or with
    ``skip_bad`` is counted in ``skipped``. With ``skip_bad`` each image is decoded in full, once, as the
    in-memory read does: a truncated file is skipped here, not failed later in a batch, so the same images are
    left out (and the same split made) whatever ``--workers`` is. ``cache``: a JSON file reused when it lists
    the same root, file names, ``skip_bad`` and ``min_side`` settings (and, with ``skip_bad``, full decoding)."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    paths = sorted(str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images found under {root} (looked for {', '.join(IMAGE_SUFFIXES)})")
    key = {"version": INDEX_VERSION, "root": str(root.resolve()), "files": len(paths), "skip_bad": skip_bad,
           "min_side": min_side, **({"decoded": True} if skip_bad else {})}  # fmt: skip
    if cache is not None and Path(cache).is_file():
        saved = json.loads(Path(cache).read_text(encoding="utf-8"))
        if saved.get("key") == key and sorted(saved["paths"] + saved["skipped"]) == paths:
            saved_labels = saved["labels"]
            return ImageIndex(str(root), tuple(saved["paths"]), tuple(saved["gray"]),
                              None if saved_labels is None else tuple(saved_labels), tuple(saved["class_names"]),
                              tuple(saved["skipped"]))  # fmt: skip
    kept, gray, skipped = [], [], []
    for path in paths:
        try:
            # skip_bad: decode now (open_image loads the pixels); a header alone passes a truncated file.
            with open_image(Path(path)) if skip_bad else Image.open(path) as img:
                if min(img.width, img.height) < min_side:
                    raise ValueError(f"{img.height}x{img.width} pixels, smaller than one {min_side}x{min_side} patch")
                gray.append(is_gray(img))
            kept.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            if not skip_bad:
                raise ValueError(f"cannot read image {path}: {err}") from err
            skipped.append(path)
    if not kept:
        raise ValueError(f"{root}: none of the {len(paths)} image files could be read")
    rel = [Path(p).relative_to(root) for p in kept]
    labels: tuple[int, ...] | None = None
    names: tuple[str, ...] = ()
    if all(len(r.parts) > 1 for r in rel):
        names = tuple(sorted({r.parts[0] for r in rel}))
        labels = tuple(names.index(r.parts[0]) for r in rel)
    index = ImageIndex(str(root), tuple(kept), tuple(gray), labels, names, tuple(skipped))
    if cache is not None:
        from masklab.core.io import atomic_write_json

        atomic_write_json(cache, {"key": key, "paths": kept, "gray": gray, "labels": labels,
                                  "class_names": list(names), "skipped": skipped})  # fmt: skip
    return index


TAR_SEP = "::"  # "shard.tar::member.jpg" names an image inside a WebDataset tar


def index_tar_shards(tars: list[Path], *, skip_bad: bool = False) -> ImageIndex:
    """Index WebDataset ``.tar`` shards: one sample per key (member name up to its first dot) holding an image
    member and optionally a ``.cls`` member with an integer class. Members are located once (offset, size), so
    a sample is later read with one seek in a file opened only for that read."""
    import io
    import tarfile

    from PIL import Image, UnidentifiedImageError

    paths, gray, labels, skipped = [], [], [], []
    for tar_path in tars:
        samples: dict[str, dict[str, tarfile.TarInfo]] = {}
        with tarfile.open(tar_path) as tar:
            for member in tar:
                base = Path(member.name).name
                if member.isfile() and "." in base:  # key = the path up to the base name's first dot
                    stem, ext = base.split(".", 1)
                    samples.setdefault(member.name[: len(member.name) - len(base)] + stem, {})[ext.lower()] = member
            for key in sorted(samples):
                parts = samples[key]
                image = next((m for ext, m in parts.items() if f".{ext}" in IMAGE_SUFFIXES), None)
                if image is None:
                    continue
                name = f"{tar_path}{TAR_SEP}{image.offset_data}:{image.size}:{image.name}"
                try:
                    with Image.open(io.BytesIO(_member_bytes(tar, image, tar_path))) as img:
                        if skip_bad:  # decode now, so a truncated member is skipped whatever --workers is
                            img.load()
                        gray.append(is_gray(img))
                except (OSError, UnidentifiedImageError, ValueError) as err:
                    if not skip_bad:
                        raise ValueError(f"cannot read image {tar_path}:{image.name}: {err}") from err
                    skipped.append(f"{tar_path}:{image.name}")
                    continue
                paths.append(name)
                cls = parts.get("cls")
                labels.append(int(_member_bytes(tar, cls, tar_path).decode().strip()) if cls is not None else None)
    if not paths:
        raise ValueError(f"no images found in {', '.join(map(str, tars))}")
    known = [label for label in labels if label is not None]
    labelled = len(known) == len(labels)
    names = tuple(str(c) for c in sorted(set(known))) if labelled else ()
    root = str(tars[0].parent if len(tars) > 1 else tars[0])
    return ImageIndex(root, tuple(paths), tuple(gray), tuple(known) if labelled else None, names, tuple(skipped))


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, tar_path: Path) -> bytes:
    """The bytes of a regular-file member of ``tar`` (``extractfile`` gives None for anything else)."""
    handle = tar.extractfile(member)
    if handle is None:
        raise ValueError(f"{tar_path}: member {member.name} is not a regular file")
    return handle.read()


def _open_member(name: str):
    """Decode the image a ``TAR_SEP`` name points at (one seek + read; the tar is closed again at once)."""
    import io

    from PIL import Image, UnidentifiedImageError

    tar_path, rest = name.split(TAR_SEP, 1)
    offset, size, member = rest.split(":", 2)
    with open(tar_path, "rb") as f:
        f.seek(int(offset))
        data = f.read(int(size))
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ValueError(f"cannot read image {tar_path}:{member}: {err}") from err
    return upright(img)


@dataclass(frozen=True)
class ImageFolderStream:
    """Images decoded on demand to uint8 ``(C, H, W)`` of ``image_size``, batched like ``ImageDataset``."""

    paths: tuple[str, ...]
    image_size: tuple[int, int]
    channels: int
    labels: Tensor | None = None
    class_names: tuple[str, ...] = ()
    name: str = ""
    augment: Augment | None = None
    min_side: int = 1
    skipped: tuple[str, ...] = ()  # what a skip_bad index left out (named on stderr, as ImageDataset's are)

    @classmethod
    def from_index(cls, index: ImageIndex, *, image_size: tuple[int, int], channels: int | None = None,
                   min_side: int = 1) -> ImageFolderStream:  # fmt: skip
        colour = [p for p, g in zip(index.paths, index.gray, strict=True) if not g]
        if channels is None:
            channels = 3 if colour else 1
        elif channels == 1 and colour:
            raise ValueError(f"the model takes 1-channel (gray) images but {colour[0]} has 3 colour channels")
        labels = None if index.labels is None else torch.tensor(index.labels)
        note = f" ({len(index.skipped)} unreadable skipped)" if index.skipped else ""
        height, width = image_size
        return cls(index.paths, (height, width), channels, labels, index.class_names, f"{index.root}{note}",
                   min_side=min_side, skipped=index.skipped)  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.paths

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else max(len(self.class_names), int(self.labels.max()) + 1)

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 ``(C, H, W)``; an unreadable file is a ``ValueError`` naming it."""
        path = Path(self.paths[i])
        img = _open_member(self.paths[i]) if TAR_SEP in self.paths[i] else open_image(path)
        try:
            return image_to_array(img, self.channels, self.image_size, self.min_side, path)
        finally:
            img.close()

    def images(self, indices: Tensor | slice | None = None) -> Tensor:
        """Float images ``(n, C, H, W)`` in [0, 1], no augmentation."""
        if indices is None or isinstance(indices, slice):
            rows = list(range(len(self))[indices or slice(None)])
        else:
            rows = indices.tolist()
        return torch.from_numpy(np.stack([self.decode(i) for i in rows])).float() / 255.0

    def get_batch(self, indices: Tensor, generator: torch.Generator) -> ImageBatch:
        images = self.images(indices)
        if self.augment is not None:
            images = random_resized_crop(images, generator, self.augment)
        return ImageBatch(images, None if self.labels is None else self.labels[indices])

    def subset(self, indices: Tensor) -> ImageFolderStream:
        keep = indices.tolist()
        labels = None if self.labels is None else self.labels[indices]
        return replace(self, paths=tuple(self.paths[i] for i in keep), labels=labels)

    def with_augment(self, augment: Augment | None) -> ImageFolderStream:
        return replace(self, augment=augment)

    def pixel_stats(self, max_images: int = 1000) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] over at most ``max_images`` evenly spaced images."""
        step = max(1, len(self) // max_images)
        x = self.images(slice(0, len(self), step)).transpose(0, 1).reshape(self.channels, -1).double()
        return tuple(x.mean(dim=1).tolist()), tuple(x.std(dim=1).clamp_min(1e-3).tolist())
