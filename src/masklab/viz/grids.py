"""Image grids for reconstructions: rows of same-sized images with optional column titles, saved as PNG.

Images are tensors or arrays ``(C, H, W)`` (C = 1 or 3) with values in [0, 1]. Small images (MNIST is 28x28)
are enlarged with nearest-neighbour so patch borders stay sharp. Needs Pillow (``masklab[vision]``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _to_hwc_uint8(image) -> np.ndarray:
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"grid images must be (C, H, W) with C = 1 or 3, got shape {a.shape}")
    a = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a
    return np.clip(np.rint(a.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def image_grid(
    rows: Sequence[Sequence[object]],
    *,
    titles: Sequence[str] | None = None,
    min_tile: int = 96,
    pad: int = 4,
    background: int = 255,
):
    """Lay ``rows`` (each a sequence of ``(C, H, W)`` images) out as one ``PIL.Image``.

    Tiles are enlarged by an integer factor to at least ``min_tile`` pixels on the short side; ``titles``
    (one per column) are drawn above the first row.
    """
    from PIL import Image, ImageDraw

    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one row with one image")
    tiles = [[_to_hwc_uint8(img) for img in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    if any(t.shape[:2] != (h, w) for row in tiles for t in row):
        raise ValueError("all grid images must have the same height and width")
    cols = max(len(row) for row in tiles)
    if titles is not None and len(titles) != cols:
        raise ValueError(f"{len(titles)} titles for {cols} columns")
    scale = max(1, -(-min_tile // min(h, w)))
    th, tw = h * scale, w * scale
    header = 16 if titles else 0
    canvas = Image.new("RGB", (cols * (tw + pad) + pad, header + len(tiles) * (th + pad) + pad), (background,) * 3)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            img = Image.fromarray(tile).resize((tw, th), Image.Resampling.NEAREST)
            canvas.paste(img, (pad + c * (tw + pad), header + pad + r * (th + pad)))
    if titles:
        draw = ImageDraw.Draw(canvas)
        for c, title in enumerate(titles):
            draw.text((pad + c * (tw + pad) + 2, 2), title, fill=(0, 0, 0))
    return canvas


def write_picture(image, path: str | Path) -> Path:
    """A ``PIL.Image`` encoded in memory (the format from ``path``'s suffix, PNG when it has none or an unknown
    one), then written atomically: a failure while encoding leaves ``path`` as it was."""
    from PIL import Image

    from masklab.core.io import atomic_write_bytes

    buffer = io.BytesIO()
    image.save(buffer, format=Image.registered_extensions().get(Path(path).suffix.lower(), "PNG"))
    return atomic_write_bytes(path, buffer.getvalue())


def save_grid(path: str | Path, rows: Sequence[Sequence[object]], *, titles: Sequence[str] | None = None) -> Path:
    """:func:`image_grid` written to ``path`` (PNG; parent folders are created; atomic)."""
    return write_picture(image_grid(rows, titles=titles), path)


def save_image(path: str | Path, image) -> Path:
    """One ``(C, H, W)`` image in [0, 1] written at its own size (PNG, gray when C = 1)."""
    from PIL import Image

    a = _to_hwc_uint8(image)
    gray = hasattr(image, "shape") and image.shape[0] == 1
    return write_picture(Image.fromarray(a[..., 0] if gray else a), path)
