"""Inpainting quality: PSNR on the hidden pixels, and classical inpainting baselines to compare against.

Images here are numpy arrays ``(H, W)`` or ``(H, W, C)`` with values in [0, 1]; ``hidden: bool (H, W)`` is
True where a pixel is hidden and must be filled (the masklab polarity). Baselines:

- ``telea``: OpenCV ``INPAINT_TELEA`` (Telea 2004, fast marching);
- ``ns``: OpenCV ``INPAINT_NS`` (Bertalmio et al. 2001, Navier-Stokes);
- ``biharmonic``: scikit-image ``inpaint_biharmonic`` (smooth biharmonic interpolation);
- ``mean``: every hidden pixel gets the mean of the visible pixels (a floor any method should beat).
"""

from __future__ import annotations

import math

import numpy as np

CLASSICAL_METHODS = ("telea", "ns", "biharmonic")


def _check_pair(pred: np.ndarray, target: np.ndarray, hidden: np.ndarray | None) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    if hidden is not None:
        if hidden.dtype != bool:
            raise ValueError(f"hidden must be a bool array (True = hidden), got {hidden.dtype}")
        if hidden.shape != target.shape[: hidden.ndim]:
            raise ValueError(f"hidden {hidden.shape} does not cover the leading dims of the images {target.shape}")


def mse(pred, target, hidden=None) -> float:
    """Mean squared error over all pixels, or only where ``hidden`` is True (all channels of those pixels)."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    hidden = None if hidden is None else np.asarray(hidden)
    _check_pair(pred, target, hidden)
    err = (pred - target) ** 2
    if hidden is None:
        return float(err.mean())
    if not hidden.any():
        raise ValueError("hidden selects no pixel; PSNR over nothing is undefined")
    return float(err[hidden].mean())


def psnr(pred, target, hidden=None, *, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for a perfect match), over ``hidden`` pixels when given."""
    error = mse(pred, target, hidden)
    return math.inf if error == 0 else 10.0 * math.log10(data_range**2 / error)


def classical_inpaint(image: np.ndarray, hidden: np.ndarray, method: str, *, radius: int = 3) -> np.ndarray:
    """Fill ``hidden`` pixels of ``image (H, W[, C])`` in [0, 1] with a classical method; returns float64.

    Visible pixels are returned unchanged. ``radius`` is OpenCV's neighbourhood (ignored by biharmonic).
    """
    image = np.asarray(image, dtype=np.float64)
    hidden = np.asarray(hidden)
    _check_pair(image, image, hidden)
    if hidden.ndim != 2 or image.ndim not in (2, 3):
        raise ValueError(f"expected image (H, W) or (H, W, C) and hidden (H, W), got {image.shape}, {hidden.shape}")
    if method in ("telea", "ns"):
        import cv2

        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        # OpenCV inpaints 8-bit images: quantising adds at most 1/510 error, far below the gaps measured here.
        u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
        filled = cv2.inpaint(u8, hidden.astype(np.uint8), radius, flag).astype(np.float64) / 255.0
        filled = filled.reshape(image.shape)
    elif method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        filled = inpaint_biharmonic(image, hidden, channel_axis=-1 if image.ndim == 3 else None)
    elif method == "mean":
        filled = image.copy()
        filled[hidden] = image[~hidden].mean(axis=0) if (~hidden).any() else 0.5
    else:
        raise ValueError(f"unknown inpainting method {method!r}; known: {', '.join((*CLASSICAL_METHODS, 'mean'))}")
    out = np.where(hidden[..., None] if image.ndim == 3 else hidden, filled, image)
    return np.clip(out, 0.0, 1.0)
