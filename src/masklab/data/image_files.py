"""Image files -> uint8 arrays: open/decode with a clear error, gray/colour detection, cover-resize + centre
crop, decoding a list of files. Shared by :mod:`masklab.data.images` (in memory) and
:mod:`masklab.data.image_stream` (decoded per sample in DataLoader workers).

Layout: one image is uint8 ``(C, H, W)``; a dataset's pixels are ``(N, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")


class TooManyPixelsError(ValueError):
    """An image whose header promises more pixels than allowed (a size limit, not a broken file)."""


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
        raise TooManyPixelsError(f"image {name} is {img.width}x{img.height} pixels, more than the {max_pixels} "
                                 "allowed")  # fmt: skip
    try:
        img.load()  # decode now: a truncated file fails here, not later in a batch
    except unreadable as err:
        raise ValueError(f"cannot read image {name}: {err}") from err
    if img.width == 0 or img.height == 0:
        raise ValueError(f"cannot read image {name}: it has no pixels")
    return upright(img)


ORIENTATION = 0x0112  # the EXIF tag of how the stored pixels are turned


def upright(img):
    """The picture as a viewer shows it: a camera photo stores its pixels turned and says so in an EXIF
    orientation tag, which is applied here (as browsers and Hugging Face's ``load_image`` do); any other
    image as it is. Masks drawn on the picture as shown then line up with it."""
    from PIL import ImageOps

    if img.getexif().get(ORIENTATION, 1) == 1:
        return img
    return ImageOps.exif_transpose(img)


def is_gray(img) -> bool:
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        return True
    if img.mode == "P":  # a palette image is gray when every palette colour it uses is
        a = np.asarray(img.convert("RGB"))
        return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())
    return False


def has_transparency(img) -> bool:
    """Some pixel of the opened image is not fully opaque: an alpha channel below 255 somewhere, or a palette /
    ``tRNS`` colour marked transparent that the picture uses. Pictures are read without alpha (RGB or L, as
    training reads them), so such a pixel shows its stored colour."""
    if "A" not in img.getbands() and "transparency" not in img.info:
        return False
    try:
        alpha = (img if img.mode == "RGBA" else img.convert("RGBA")).getchannel("A")
    except (ValueError, OSError):  # a mode PIL cannot turn into RGBA keeps no alpha worth naming
        return False
    return alpha.getextrema()[0] < 255


def transparency_note(paths: Sequence[str | Path]) -> str | None:
    """``"N picture(s) had transparency; ..."`` naming (the first ten of) ``paths`` whose image files have
    transparent pixels (:func:`has_transparency`); None when none has. Names that are no readable image file
    are passed over (their reader says what is wrong)."""
    found = []
    for path in paths:
        try:
            if Path(path).is_file() and has_transparency(open_image(Path(path))):
                found.append(str(path))
        except (ValueError, OSError):
            continue
    if not found:
        return None
    shown = ", ".join(found[:10]) + (f" and {len(found) - 10} more" if len(found) > 10 else "")
    n = len(found)
    return f"{n} picture{'s' if n != 1 else ''} had transparency; transparent pixels use their stored colour: {shown}"


def to_8bit(img):
    """A 16/32-bit gray image (PIL modes ``I;16*``, ``I``, ``F``) rescaled to 8-bit ``L``; any other image as
    it is. The one rule every reader of pictures uses (PIL's ``convert`` would clip such an image to white):
    values are divided by 65535 when any exceeds 255, else by 255; a float image (``F``) whose values all lie
    in [0, 1] is taken as intensities in [0, 1], the float convention (scikit-image, torchvision). (16-bit RGB
    files PIL already opens as 8-bit ``RGB``, keeping each value's high byte.)"""
    from PIL import Image

    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    a = np.asarray(img, dtype=np.float64)
    if img.mode == "F" and a.size and a.min() >= 0.0 and a.max() <= 1.0:
        top = 1.0
    else:
        top = 65535.0 if a.max() > 255 else 255.0
    return Image.fromarray(np.clip(a / top * 255.0, 0, 255).astype(np.uint8))


def image_pixels(img, channels: int) -> np.ndarray:
    """One opened image at its own size -> uint8 ``(H, W, channels)`` (channels 1 or 3): high-bit-depth gray
    rescaled by :func:`to_8bit`, then converted (a colour image for ``channels=1`` becomes its luma)."""
    if channels not in (1, 3):
        raise ValueError(f"an image decodes to 1 or 3 channels, not {channels}")
    a = np.asarray(to_8bit(img).convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def image_to_array(img, channels: int, size: tuple[int, int] | None, min_side: int, path: Path) -> np.ndarray:
    """One image -> uint8 ``(C, H, W)``: converted to ``channels``, resized to cover ``size``, centre-cropped."""
    from PIL import Image

    if min(img.width, img.height) < min_side:
        raise ValueError(
            f"image {path} is {img.height}x{img.width} pixels, smaller than one {min_side}x{min_side} patch"
        )
    img = to_8bit(img).convert("L" if channels == 1 else "RGB")
    if size is not None and (img.height, img.width) != tuple(size):
        H, W = size
        scale = max(H / img.height, W / img.width)  # cover the target, then crop the centre
        rw, rh = max(W, round(img.width * scale)), max(H, round(img.height * scale))
        img = img.resize((rw, rh), Image.Resampling.BICUBIC)
        left, top = (rw - W) // 2, (rh - H) // 2
        img = img.crop((left, top, left + W, top + H))
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def decode_image_files(
    paths: Sequence[Path],
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    min_side: int = 1,
    name: str = "images",
) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Decode image files -> (uint8 pixels ``(N, C, H, W)``, the paths kept, the paths skipped); sizes must
    agree unless ``image_size`` resizes them.

    ``channels=None`` picks 3 when any image has colour, else 1. A given ``channels`` must match the files
    (a colour image for a 1-channel model is an error, not a silent conversion); gray files are widened to 3.
    Unreadable files, and images smaller than ``min_side`` (one patch), raise ``ValueError`` naming the file,
    or with ``skip_bad`` are left out and returned.
    """
    opened, skipped = [], []
    for path in paths:
        try:
            img = open_image(path)
            if min(img.width, img.height) < min_side:
                raise ValueError(
                    f"image {path} is {img.height}x{img.width} pixels, smaller than one {min_side}x{min_side} patch"
                )
            opened.append((path, img))
        except ValueError:
            if not skip_bad:
                raise
            skipped.append(path)
    if not opened:
        raise ValueError(f"{name}: none of the {len(paths)} image files could be read")
    colour = [p for p, img in opened if not is_gray(img)]
    natural = 3 if colour else 1
    if channels is None:
        channels = natural
    elif channels == 1 and colour:
        raise ValueError(f"the model takes 1-channel (gray) images but {colour[0]} has 3 colour channels")
    elif channels not in (1, 3):
        raise ValueError(f"image files decode to 1 or 3 channels; the model takes {channels}")
    arrays = [image_to_array(img, channels, image_size, min_side, path) for path, img in opened]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{name}: images have different sizes {sorted(shapes)[:3]}…; pass an image size to resize")
    return np.stack(arrays), tuple(str(p) for p, _ in opened), tuple(str(p) for p in skipped)
