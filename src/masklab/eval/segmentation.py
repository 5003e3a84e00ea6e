"""Segmentation quality: IoU, Dice and boundary F-score of subject masks, and classical baselines.

Masks are numpy ``bool (N, H, W)`` arrays, True = subject pixel. IoU and Dice are *pooled* over the whole set
(intersections and unions summed over images, as VOC does per class); the boundary F-score (Martin et al.
2004, as in DAVIS) is computed per image with a pixel tolerance and averaged. Classical baselines take
uint8 RGB images ``(H, W, 3)``:

- ``otsu``: Otsu's threshold on the gray image; the side with fewer pixels is the subject (no oracle);
- ``watershed``: Sobel gradient + markers from the lowest/highest gray quantiles (scikit-image), the
  smaller region is the subject;
- ``grabcut``: OpenCV GrabCut initialised with the true subject bounding box (an oracle prompt).
"""

from __future__ import annotations

import numpy as np

CLASSICAL = ("otsu", "watershed", "grabcut")


def _check(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape or pred.dtype != bool or target.dtype != bool or pred.ndim != 3:
        raise ValueError(f"pred and target must be bool (N, H, W) of one shape, got {pred.dtype} {pred.shape} "
                         f"and {target.dtype} {target.shape}")  # fmt: skip


def _boundary(masks: np.ndarray) -> np.ndarray:
    """Pixels of ``masks (N, H, W)`` with a 4-neighbour of the other value; outside the image is background (as
    DAVIS's ``seg2bmap``), so a subject touching the image border has its boundary there."""
    pad = np.pad(masks, ((0, 0), (1, 1), (1, 1)), constant_values=False)
    inner = pad[:, 1:-1, 1:-1]
    differs = (pad[:, :-2, 1:-1] != inner) | (pad[:, 2:, 1:-1] != inner)
    differs |= (pad[:, 1:-1, :-2] != inner) | (pad[:, 1:-1, 2:] != inner)
    return masks & differs


def _dilate(masks: np.ndarray, radius: int) -> np.ndarray:
    out = masks.copy()
    for _ in range(radius):  # 8-neighbour dilation, ``radius`` times
        pad = np.pad(out, ((0, 0), (1, 1), (1, 1)))
        out = np.zeros_like(out)
        for dy in range(3):
            for dx in range(3):
                out |= pad[:, dy : dy + masks.shape[1], dx : dx + masks.shape[2]]
    return out


def boundary_f(pred: np.ndarray, target: np.ndarray, tolerance: int = 1) -> float:
    """Mean over images of the F-score between predicted and true boundary pixels, matched within
    ``tolerance`` pixels. Outside the image is background, so only an empty mask has no boundary: an image
    scores 1 without boundaries only when both masks are empty (and so equal), and 0 when one boundary is
    empty and the other is not."""
    _check(pred, target)
    bp, bt = _boundary(pred), _boundary(target)
    near_t, near_p = _dilate(bt, tolerance), _dilate(bp, tolerance)
    scores = []
    for i in range(len(pred)):
        n_p, n_t = bp[i].sum(), bt[i].sum()
        if n_p == 0 and n_t == 0:
            scores.append(1.0 if np.array_equal(pred[i], target[i]) else 0.0)
            continue
        precision = (bp[i] & near_t[i]).sum() / n_p if n_p else 0.0
        recall = (bt[i] & near_p[i]).sum() / n_t if n_t else 0.0
        scores.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    return float(np.mean(scores))


def segmentation_scores(pred: np.ndarray, target: np.ndarray, tolerance: int = 1) -> dict[str, float]:
    """``{"iou", "dice", "boundary_f"}`` of subject masks ``pred``/``target bool (N, H, W)``."""
    _check(pred, target)
    inter, p, t = float((pred & target).sum()), float(pred.sum()), float(target.sum())
    union = p + t - inter
    return {
        "iou": 1.0 if union == 0 else inter / union,
        "dice": 1.0 if p + t == 0 else 2 * inter / (p + t),
        "boundary_f": boundary_f(pred, target, tolerance),
    }


def _gray(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) if image.ndim == 3 else image.astype(float)


def _minority(region: np.ndarray) -> np.ndarray:
    return ~region if region.mean() > 0.5 else region


def classical_mask(method: str, image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Subject mask ``bool (H, W)`` of one uint8 image ``(H, W, 3)`` by a classical ``method``.

    ``grabcut`` needs ``box = (x0, y0, x1, y1)`` (exclusive end), the true subject bounding box."""
    if method == "otsu":
        from skimage.filters import threshold_otsu

        gray = _gray(image)
        return _minority(gray > threshold_otsu(gray)) if gray.max() > gray.min() else np.zeros(gray.shape, bool)
    if method == "watershed":
        from skimage.filters import sobel
        from skimage.segmentation import watershed

        gray = _gray(image)
        lo, hi = np.quantile(gray, [0.2, 0.8])
        markers = np.zeros(gray.shape, dtype=np.int32)
        markers[gray <= lo], markers[gray >= hi] = 1, 2
        return _minority(watershed(sobel(gray), markers) == 2)
    if method == "grabcut":
        import cv2

        if box is None:
            raise ValueError("grabcut needs the subject's bounding box")
        x0, y0, x1, y1 = box
        state = np.zeros(image.shape[:2], np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = np.ascontiguousarray(image[..., ::-1])
        try:
            cv2.grabCut(bgr, state, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)
        except cv2.error:  # a box covering the whole image leaves no background sample
            return np.zeros(image.shape[:2], bool)
        return (state == cv2.GC_FGD) | (state == cv2.GC_PR_FGD)
    raise ValueError(f"unknown classical method {method!r}; known: {', '.join(CLASSICAL)}")


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (exclusive end) of the True pixels of ``mask (H, W)``."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("the mask is empty: it has no bounding box")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
