"""Pixel masks as data: mask PNGs (binary and palette/class-index) and ``images/`` + ``masks/`` folders.

A *binary* mask PNG holds 0 (background) and 255 (subject), or 0 and 1; any other value is an error. It is
read by what it shows: a palette PNG by its colours (white = subject, whatever its index), a transparent
PNG by its alpha channel (opaque = subject) when its visible pixels share one colour. A *class-index* mask
PNG is a palette ("P") or 8-bit gray image whose pixel values are class indices ``0..K-1`` (0 =
background). Folders pair ``images/NAME.*`` with ``masks/NAME.png`` by file stem.

Shape legend: ``N`` examples, ``B`` batch, ``C`` channels, ``H``/``W`` height/width. ``targets (N, H, W)``
hold class indices (binary: 1 = subject pixel, 0 = background).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from masklab.core.io import atomic_write_bytes
from masklab.data import parse_data_spec
from masklab.data.image_files import to_8bit
from masklab.data.images import IMAGE_SUFFIXES, PixelImages, open_image

MASK_KINDS = ("binary", "classes")
SEGMENTATION_BUILTINS = ("synthetic-subjects",)
# Palette for class-index PNGs: background black, subject white, then distinct colours (VOC-like).
_PALETTE = [(0, 0, 0), (255, 255, 255), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]  # fmt: skip


# ------------------------------------------------------------------------------------------ PNG files
def read_mask(path: str | Path, *, kind: str = "binary", allow_empty: bool = False) -> np.ndarray:
    """One mask file -> ``bool (H, W)`` (binary, True = subject) or ``int64 (H, W)`` class indices.

    ``ValueError`` naming the file for: unreadable files, colour (non-gray) binary masks (a palette is read
    by colour), transparency together with varying colours, values other than 0/255 (or 0/1) in a binary
    mask, and -- unless ``allow_empty`` -- a mask with no subject pixel.
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"mask kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask {path} does not exist")
    values, what = _mask_values(open_image(path), path, kind)
    if kind == "binary":
        found = np.unique(values)
        if not any(set(found.tolist()) <= {0, white} for white in (255, 1, 65535)):  # 8-bit, 0/1, 16-bit
            shown = ", ".join(str(v) for v in found[:6]) + (", ..." if len(found) > 6 else "")
            raise ValueError(f"mask {path} is not binary: {what} holds {len(found)} distinct values ({shown}); "
                             "expected only 0 and 255 (or 0 and 1, or 16-bit 0 and 65535)")  # fmt: skip
        out: np.ndarray = values > 0
    else:
        out = values
    if not allow_empty and not (out > 0).any():
        raise ValueError(f"mask {path} is empty: it marks no subject pixel")
    return out


def _mask_values(img, path: Path, kind: str) -> tuple[np.ndarray, str]:
    """``(values int64 (H, W), what they are)`` of one opened mask image, by what the picture shows.

    A palette image is read by colour for a binary mask (white = subject, whatever its index) and by index
    for class indices. A transparent mask (alpha not 255 everywhere) is read from its alpha channel when its
    visible pixels share one colour; with varying colours as well it is refused: which one marks the subject
    is not clear, and dropping either would change the mask.
    """
    mode = img.mode
    if mode == "P" and kind == "classes":
        return np.asarray(img).astype(np.int64), "it"  # class indices; the palette only colours them
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
        rgb = np.asarray(img).astype(np.int64)[..., :3]
        colours = np.unique(rgb.reshape(-1, 3), axis=0)
        odd = [tuple(c) for c in colours.tolist() if not c[0] == c[1] == c[2]]
        if odd:
            shown = ", ".join(str(c) for c in odd[:4]) + (", ..." if len(odd) > 4 else "")
            raise ValueError(f"mask {path} is a palette PNG with colours that are not gray ({shown}); a binary "
                             "mask is read by colour (black = background, white = subject): save it in black "
                             "and white")  # fmt: skip
        mode = img.mode
    if mode == "1" or mode in ("L", "I") or mode.startswith("I;16"):
        return np.asarray(img).astype(np.int64), "it"  # 0/1 for 1-bit images
    if mode not in ("RGB", "RGBA", "LA"):
        raise ValueError(f"mask {path}: unsupported image mode {mode!r} (use 8-bit gray or a palette PNG)")
    a = np.asarray(img).astype(np.int64)
    a = a if a.ndim == 3 else a[..., None]
    colour, alpha = (a, None) if mode == "RGB" else (a[..., :-1], a[..., -1])  # (H, W, 3 or 1), (H, W)
    if alpha is not None and (alpha != 255).any():
        visible = colour[alpha > 0]  # (n, 3 or 1): the pixels one sees
        if len(visible) and bool((visible != visible[0]).any()):
            raise ValueError(f"mask {path} is transparent in places and its visible pixels vary in colour, so it "
                             "is not clear whether the alpha channel or the colours mark the subject; save a "
                             "gray mask (0 = background, 255 = subject) without transparency, or one colour "
                             "with the subject opaque and the background transparent")  # fmt: skip
        return alpha, "its alpha channel (the subject is the opaque part)"
    if not (colour == colour[..., :1]).all():
        raise ValueError(f"mask {path} has colour pixels; a mask is gray (binary 0/255) or a palette PNG of "
                         "class indices")  # fmt: skip
    return colour[..., 0], "it"


def write_mask(path: str | Path, mask: np.ndarray | Tensor, *, num_classes: int | None = None) -> Path:
    """Write a mask PNG atomically: ``bool (H, W)`` -> 8-bit gray 0/255; integer ``(H, W)`` class indices ->
    palette PNG (index = class, colours from a fixed table). Returns the path."""
    from PIL import Image

    a = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if a.ndim != 2:
        raise ValueError(f"a mask to write must be (H, W), got shape {a.shape}")
    if a.dtype == bool:
        img = Image.fromarray(a.astype(np.uint8) * 255, mode="L")
    elif np.issubdtype(a.dtype, np.integer):
        top = int(a.max()) if a.size else 0
        if a.min() < 0 or top > 255 or (num_classes is not None and top >= num_classes):
            raise ValueError(f"class indices must be in [0, {min(num_classes or 256, 256) - 1}], "
                             f"got [{a.min()}, {top}]")  # fmt: skip
        img = Image.fromarray(a.astype(np.uint8), mode="P")
        colours = [_PALETTE[i] if i < len(_PALETTE) else ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256)
                   for i in range(256)]  # fmt: skip
        img.putpalette([c for rgb in colours for c in rgb])
    else:
        raise ValueError(f"a mask must be bool (binary) or integer (class indices), got dtype {a.dtype}")
    return write_png(img, path)


def require_png_name(path: str | Path, what: str = "the mask") -> Path:
    """``path`` as a Path, or a ``ValueError`` when its name does not end in ``.png``: masks and edits are
    written as PNG (lossless; an RGBA cut-out keeps its transparency), and PNG bytes under another name
    (``out.jpg``) would mislead whatever opens it by its extension."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: {what} is written as PNG (lossless); give it a name ending in .png")
    return path


def write_png(img, path: str | Path, what: str = "the mask") -> Path:
    """Write the PIL image ``img`` to ``path`` (a ``.png`` name, :func:`require_png_name`) atomically."""
    path = require_png_name(path, what)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())  # readers never see a half-written file


# ------------------------------------------------------------------------------------------ dataset
@dataclass
class SegmentBatch:
    """``images (B, C, H, W)`` float in [0, 1]; ``targets (B, H, W)`` long class indices (1 = subject);
    ``tokens (B, L, D)``: a frozen encoder's cached output for these images, when the trainer has it."""

    images: Tensor
    targets: Tensor
    tokens: Tensor | None = None


@dataclass(frozen=True)
class SegmentationDataset(PixelImages):
    """Images ``pixels (N, C, H, W)`` uint8 with exact ``targets (N, H, W)`` uint8 class indices.

    ``flip``: training batches are mirrored left-right with probability 1/2 (image and mask together).
    """

    pixels: Tensor
    targets: Tensor
    num_classes: int = 2
    sources: tuple[str, ...] = ()
    name: str = ""
    flip: bool = False

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.targets.ndim != 3:
            raise ValueError(f"{self.name}: need pixels (N, C, H, W) and targets (N, H, W), got "
                             f"{tuple(self.pixels.shape)} and {tuple(self.targets.shape)}")  # fmt: skip
        if len(self.pixels) == 0:
            raise ValueError(f"{self.name}: the dataset is empty")
        if self.pixels.shape[0] != self.targets.shape[0] or self.pixels.shape[2:] != self.targets.shape[1:]:
            raise ValueError(f"{self.name}: pixels {tuple(self.pixels.shape)} and targets "
                             f"{tuple(self.targets.shape)} do not match")  # fmt: skip

    def get_batch(self, indices: Tensor, generator: torch.Generator) -> SegmentBatch:
        images, targets = self.images(indices), self.targets[indices].long()
        if self.flip:
            flip = torch.rand(len(indices), generator=generator) < 0.5  # (B,)
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            targets = torch.where(flip[:, None, None], targets.flip(-1), targets)
        return SegmentBatch(images, targets)

    def subset(self, indices: Tensor) -> SegmentationDataset:
        sources = tuple(self.sources[i] for i in indices.tolist()) if self.sources else ()
        return replace(self, pixels=self.pixels[indices], targets=self.targets[indices], sources=sources)

    def with_flip(self, flip: bool) -> SegmentationDataset:
        return replace(self, flip=flip)


# ------------------------------------------------------------------------------------------ folders
def cover_size(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(rh, rw, top, left)``: the size an image is resized to so it covers ``size = (H, W)``, and where the
    centre crop of ``size`` starts in it."""
    H, W = size
    scale = max(H / height, W / width)
    rw, rh = max(W, round(width * scale)), max(H, round(height * scale))
    return rh, rw, (rh - H) // 2, (rw - W) // 2


def _fit_size(img, size: tuple[int, int] | None, resample):
    """Resize to cover ``size = (H, W)`` and crop the centre (masks use nearest, so classes stay exact)."""
    if size is None or (img.height, img.width) == tuple(size):
        return img
    rh, rw, top, left = cover_size(img.height, img.width, size)
    img = img.resize((rw, rh), resample)
    return img.crop((left, top, left + size[1], top + size[0]))


def _kept_share(target: np.ndarray, size: tuple[int, int]) -> float:
    """The share of the subject pixels of ``target (h, w)`` inside the centre crop :func:`_fit_size` keeps."""
    h, w = target.shape
    rh, rw, top, left = cover_size(h, w, size)
    y0, y1 = math.floor(top * h / rh), math.ceil((top + size[0]) * h / rh)
    x0, x1 = math.floor(left * w / rw), math.ceil((left + size[1]) * w / rw)
    subject = target > 0
    return float(subject[y0:y1, x0:x1].sum() / max(1, subject.sum()))


def load_mask_folder(
    root: str | Path,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    kind: str = "binary",
    min_side: int = 1,
    allow_empty: bool = False,
) -> SegmentationDataset:
    """``root/images/NAME.*`` paired with ``root/masks/NAME.png`` by stem -> a :class:`SegmentationDataset`.

    Errors name the file: a missing mask, a mask of another size than its image, a non-binary or empty mask
    (see :func:`read_mask`), an image smaller than ``min_side`` (one patch). ``image_size`` resizes pairs
    together (cover + centre crop; nearest for masks); without it all images must share one size. A mask
    whose subject the centre crop cuts away entirely is an error naming it; cutting over a quarter of
    subjects is warned about (one line: how many masks, the worst one).
    """
    from PIL import Image

    root = Path(root)
    image_dir, mask_dir = root / "images", root / "masks"
    for d in (image_dir, mask_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"{root} needs two folders images/ and masks/ (paired by file name); "
                                    f"{d} does not exist")  # fmt: skip
    images = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images in {image_dir} (looked for {', '.join(IMAGE_SUFFIXES)})")
    masks = {p.stem: p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    if channels not in (None, 1, 3):
        raise ValueError(f"image files decode to 1 or 3 channels, not {channels}")
    pixels, targets = [], []
    cut: list[tuple[float, Path]] = []  # (share of the subject kept, mask) where fitting cuts much of it away
    for path in images:
        mask_path = masks.get(path.stem)
        if mask_path is None:
            raise ValueError(f"image {path} has no mask: expected {mask_dir / (path.stem + '.png')}")
        img = open_image(path)
        if min(img.width, img.height) < min_side:
            raise ValueError(f"image {path} is {img.height}x{img.width} pixels, smaller than one "
                             f"{min_side}x{min_side} patch")  # fmt: skip
        target = read_mask(mask_path, kind=kind, allow_empty=allow_empty)
        if image_size is not None and target.any() and tuple(image_size) != target.shape:
            kept = _kept_share(target, image_size)
            if kept < 0.75:
                cut.append((kept, mask_path))
        if target.shape != (img.height, img.width):
            raise ValueError(f"mask {mask_path} is {target.shape[0]}x{target.shape[1]} but image {path} is "
                             f"{img.height}x{img.width}; a mask must have its image's size")  # fmt: skip
        img = _fit_size(to_8bit(img).convert("L" if channels == 1 else "RGB"), image_size, Image.Resampling.BICUBIC)
        if int(target.max()) > 255:
            raise ValueError(f"mask {mask_path} holds class index {int(target.max())}; at most 255 classes")
        tmask = _fit_size(Image.fromarray(target.astype(np.uint8)), image_size, Image.Resampling.NEAREST)
        if not allow_empty and not np.asarray(tmask).any():
            assert image_size is not None  # read_mask refused an empty mask
            raise ValueError(f"mask {mask_path}: its subject lies outside the centre crop that training keeps of "
                             f"its {target.shape[0]}x{target.shape[1]} image (resized to cover the model's "
                             f"{image_size[0]}x{image_size[1]} input, then cropped); crop the image and its mask "
                             "around the subject")  # fmt: skip
        a = np.asarray(img, dtype=np.uint8)
        pixels.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        targets.append(np.asarray(tmask, dtype=np.uint8))
    if cut:
        (least, where), (H, W) = min(cut), image_size or (0, 0)
        warnings.warn(f"{root}: resizing to the model's {H}x{W} input and cropping the centre cuts away over a "
                      f"quarter of the subject of {len(cut)} of {len(images)} masks (least kept: {where.name}, "
                      f"{least:.0%})", stacklevel=2)  # fmt: skip
    shapes = {a.shape for a in pixels}
    if len(shapes) > 1:
        raise ValueError(f"{root}: images have different sizes {sorted(shapes)[:3]}; pass an image size to resize")
    stacked = torch.from_numpy(np.stack(targets))
    num_classes = 2 if kind == "binary" else max(2, _class_count(root, stacked, images, masks))
    return SegmentationDataset(torch.from_numpy(np.stack(pixels)), stacked, num_classes,
                               tuple(str(p) for p in images), name=str(root))  # fmt: skip


def _class_count(root: Path, targets: Tensor, images: list[Path], masks: dict[str, Path]) -> int:
    """``K`` for class-index ``targets (N, H, W)``: ids must be ``0..K-1``; a range mostly unused (a gray 0/255
    mask read as classes: 256 classes) is an error naming the mask with the top id, a few unused a warning."""
    found = torch.unique(targets).tolist()
    top, unused = int(found[-1]), [c for c in range(int(found[-1]) + 1) if c not in set(found)]
    shown = ", ".join(str(c) for c in found[:8]) + (", ..." if len(found) > 8 else "")
    if len(unused) > len(found):
        where = masks[images[int(torch.nonzero((targets == top).flatten(1).any(1))[0, 0])].stem]
        raise ValueError(f"mask {where} holds class id {top}, but the masks hold only the ids {shown}: class ids "
                         f"must be 0..K-1 ({len(unused)} of 0..{top} unused); a 0/255 mask is binary, not class "
                         "indices")  # fmt: skip
    if unused:
        warnings.warn(f"{root}: class ids {', '.join(map(str, unused[:8]))} of 0..{top} appear in no mask",
                      stacklevel=3)  # fmt: skip
    return top + 1


def load_segmentation(
    spec: str,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    kind: str = "binary",
    min_side: int = 1,
) -> SegmentationDataset:
    """``--data`` for segmentation: ``builtin:synthetic-subjects`` or a folder with ``images/`` + ``masks/``."""
    parsed = parse_data_spec(spec, known_builtins=SEGMENTATION_BUILTINS)
    if parsed.builtin is not None:
        from masklab.data.synthetic_segmentation import synthetic_subjects

        pixels, targets = synthetic_subjects()
        dataset = SegmentationDataset(
            torch.from_numpy(pixels), torch.from_numpy(targets), num_classes=2,
            sources=tuple(f"synthetic-subjects[{i}]" for i in range(len(pixels))), name="synthetic-subjects",
        )  # fmt: skip
        if image_size is not None and tuple(image_size) != dataset.image_size:
            raise ValueError(f"builtin:{parsed.builtin} is {dataset.image_size[0]}x{dataset.image_size[1]}; "
                             f"the model takes {image_size[0]}x{image_size[1]}")  # fmt: skip
    elif parsed.path is not None and parsed.path.is_dir():
        dataset = load_mask_folder(parsed.path, image_size=image_size, channels=channels, kind=kind,
                                   min_side=min_side)  # fmt: skip
    else:
        raise ValueError(f"--data {spec}: expected a folder with images/ and masks/, or builtin:NAME")
    if channels is not None and dataset.channels != channels:
        raise ValueError(f"--data {spec} has {dataset.channels}-channel images; the model takes {channels}")
    return dataset
