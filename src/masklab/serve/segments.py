"""The segmentation panel's work: the subject mask of an uploaded (or built-in) image, with an optional box
``x0,y0,x1,y1``, and the edits of :mod:`masklab.recipes.edit` (remove or blur the background, paste the subject
on another picture, remove the subject with the MAE).

Images are worked on at their own size, as ``masklab segment`` / ``masklab edit`` do: the mask PNG is the file
``masklab segment RUN IMAGE -o mask.png`` writes (8-bit gray 0/255; a palette PNG of class indices for a head of
more than two classes), the side-by-side is its ``mask_side.png``.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import Tensor

from masklab.serve.errors import InputError, check_example
from masklab.serve.images import NOT_RASTER, data_url, image_error, png_bytes, png_data_url, written_png
from masklab.serve.runs import LoadedRun

MAX_PIXELS = 12_000_000  # an image worked on at its own size (about 4000 x 3000)
EDITS = ("remove-background", "blur-background", "replace-background", "remove-subject")
MAX_RADIUS = 100.0


def head(run: LoadedRun):
    """The run's :class:`~masklab.serve.heads.SegmentHead` (field ``run`` when it has none)."""
    if run.segment is None:
        raise InputError("run", f"{run.name} has no segmentation head; train one: masklab segment train {run.path} "
                         "--data DIR")  # fmt: skip
    return run.segment


def details(run: LoadedRun) -> dict:
    """What the page needs to draw a segmentation panel."""
    h = run.segment
    cfg = h.model.mae.config
    scores = h.info.get("test_scores") or h.info.get("validation_scores") or {}
    return {"image_size": list(cfg.image_size), "channels": cfg.channels, "classes": h.model.config.num_classes,
            "examples": 0 if h.examples is None else len(h.examples), "remove_subject": h.editor is not None,
            "head": str(h.path), "scores": scores, "notes": h.notes}  # fmt: skip


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """``"x0,y0,x1,y1"`` (pixels of the image, exclusive end) -> four ints; empty -> None."""
    if text is None or not text.strip():
        return None
    try:
        parts = tuple(int(p) for p in text.replace(" ", "").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise InputError("box", f"expected a box x0,y0,x1,y1 in pixels, got {text[:40]!r}")
    return parts


def decode(data: bytes, content_type: str | None, channels: int, field: str = "image") -> np.ndarray:
    """An uploaded image at its own size as uint8 ``(H, W, channels)`` (a colour image for a gray model: luma)."""
    from masklab.data.image_files import image_pixels, open_image

    if not (content_type or "").startswith("image/") or content_type in NOT_RASTER:
        raise InputError(field, f"expected a raster image file (PNG, JPEG, GIF, BMP, WebP, TIFF), got "
                         f"{content_type or 'no content type'}", 415)  # fmt: skip
    try:
        img = open_image(io.BytesIO(data), name=f"upload '{field}'", max_pixels=MAX_PIXELS)
    except ValueError as err:  # too many pixels: a size limit, like the body's (413)
        raise image_error(err, field, MAX_PIXELS) from None
    return image_pixels(img, channels)  # 16/32-bit gray rescaled as training reads it, not clipped to white


def input_image(run: LoadedRun, upload: bytes | None, content_type: str | None, example: int | None) -> np.ndarray:
    """The image a request names: an upload (field ``image``) or a held-out example (field ``example``)."""
    h = head(run)
    if (upload is None) == (example is None):
        raise InputError("image", "give either an image upload ('image') or a built-in example index ('example')")
    if upload is None:
        example = check_example(h.examples, example, owner="head")
        pixels = (h.examples[example] * 255).round().to(torch.uint8)  # (C, H, W), the stored bytes
        return np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())
    return decode(upload, content_type, h.model.mae.config.channels)


def _as_tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0  # (C, H, W)


def _classes(run: LoadedRun, image: np.ndarray, box: tuple[int, int, int, int] | None) -> Tensor:
    from masklab.recipes.segment import predict_mask

    try:
        return predict_mask(head(run).model, _as_tensor(image), box)
    except ValueError as err:  # a box outside the image, or an image smaller than one patch
        raise InputError("box" if box is not None and "box" in str(err) else "image", str(err)) from None


def mask(run: LoadedRun, image: np.ndarray, box: tuple[int, int, int, int] | None) -> dict:
    """:func:`~masklab.recipes.segment.predict_mask` of one image, as ``masklab segment`` writes it."""
    from masklab.data.pixel_masks import write_mask
    from masklab.recipes.segment import overlay, save_side_by_side

    classes = _classes(run, image, box)
    K = head(run).model.config.num_classes
    picture = _as_tensor(image)
    mask_png = written_png(lambda path: write_mask(path, classes.numpy() > 0 if K == 2 else classes.numpy(),
                                                   num_classes=K))  # fmt: skip
    return {"width": image.shape[1], "height": image.shape[0], "classes": K, "box": None if box is None else list(box),
            "subject_fraction": float((classes > 0).float().mean()), "image": png_data_url(picture),
            "mask": data_url(mask_png), "overlay": png_data_url(overlay(picture, classes)),
            "side_by_side": data_url(written_png(lambda path: save_side_by_side(path, picture, classes)))}  # fmt: skip


def edit(run: LoadedRun, image: np.ndarray, box: tuple[int, int, int, int] | None, what: str, radius: float,
         background: np.ndarray | None) -> tuple[bytes, int]:  # fmt: skip
    """(the edited image as PNG bytes, subject pixels): an edit of :mod:`masklab.recipes.edit` around the
    subject the head finds (inside ``box``)."""
    from masklab.recipes import edit as edits

    h = head(run)
    if what not in EDITS:
        raise InputError("edit", f"expected one of {', '.join(EDITS)}, got {what!r}")
    if what == "remove-subject" and h.editor is None:
        reasons = [n.split("remove-subject is not offered: ", 1)[1] for n in h.notes if "remove-subject" in n]
        raise InputError("edit", "remove-subject is not offered for this run: " + (reasons or ["no MAE"])[0])
    if what == "blur-background" and not 0 < radius <= MAX_RADIUS:
        raise InputError("radius", f"the blur radius must be in (0, {MAX_RADIUS:g}] pixels, got {radius}")
    if what == "replace-background" and background is None:
        raise InputError("background", "replace-background needs a background image ('background')")
    subject = _classes(run, image, box).numpy() > 0
    if not subject.any():
        where = "inside the box" if box is not None else "in this image"
        raise InputError("box" if box is not None else "image", f"the segmentation head found no subject {where}")
    if what == "remove-background":
        out = edits.remove_background(image, subject)
    elif what == "blur-background":
        out = edits.blur_background(image, subject, radius)
    elif what == "replace-background":
        assert background is not None
        out = edits.replace_background(image, subject, background)
    else:
        try:
            out = edits.remove_subject(h.editor, image, subject)
        except ValueError as err:  # the subject covers every patch
            raise InputError("image", str(err)) from None
    written = written_png(lambda path: edits.save_png(path, out))  # the bytes `masklab edit -o out.png` writes
    return written, int(subject.sum())


def example_png(run: LoadedRun, index: int) -> bytes:
    """A held-out example of the head's data as PNG bytes (field ``index``)."""
    h = head(run)
    return png_bytes(h.examples[check_example(h.examples, index, field="index", owner="head", status=404)])
