"""The MAE panel's work: an uploaded or built-in image, a painted or drawn patch mask, what the model fills in,
and where its [CLS] token looks (attention rollout).

Masks travel as a string of ``L`` characters ``0``/``1`` in patch order (row-major over the ``gh x gw`` grid),
``1`` = hidden (masklab polarity). Images go back as PNG data URLs at the model's resolution.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from masklab.serve.errors import InputError, check_example
from masklab.serve.runs import LoadedRun

MAX_PIXELS = 40_000_000  # an uploaded image's header may not promise more (a decompression bomb)
NOT_RASTER = ("image/svg+xml",)  # image/* types PIL cannot decode
MASKINGS = ("paint", "random", "block")


def png_bytes(image: Tensor) -> bytes:
    """``(C, H, W)`` in [0, 1], C = 1 or 3 -> the bytes of a PNG file."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """PNG bytes -> ``data:image/png;base64,...`` (how pictures travel in JSON answers)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_data_url(image: Tensor) -> str:
    """``(C, H, W)`` in [0, 1], C = 1 or 3 -> ``data:image/png;base64,...``."""
    return data_url(png_bytes(image))


def written_png(write: Callable[[Path], Any]) -> bytes:
    """The bytes of the PNG ``write(path)`` writes (a recipe's or a viz function's own file writer), drawn
    into a private temporary folder: exactly what the CLI command writes."""
    with tempfile.TemporaryDirectory(prefix="masklab-serve-") as tmp:
        return Path(write(Path(tmp) / "picture.png")).read_bytes()


def image_error(err: ValueError, field: str, limit: int) -> InputError:
    """An upload PIL or masklab refused, as field ``field``'s error: 413 naming the pixel ``limit`` for an image
    with too many pixels (masklab's limit, or PIL's own decompression-bomb one), 415 otherwise."""
    from PIL import Image

    from masklab.data.image_files import TooManyPixelsError

    if isinstance(err, TooManyPixelsError):
        return InputError(field, f"{err} (this server's pixel limit); send a smaller image", 413)
    if isinstance(err.__cause__, Image.DecompressionBombError):
        return InputError(field, f"the {field} has more pixels than the {limit:,} allowed (this server's pixel "
                          "limit); send a smaller image", 413)  # fmt: skip
    return InputError(field, str(err), 415)


def input_image(run: LoadedRun, upload: bytes | None, content_type: str | None, example: int | None) -> Tensor:
    """The image a request names: an upload (field ``image``) or a held-out example (field ``example``), as
    ``(1, C, H, W)`` in [0, 1] at the model's size and channels."""
    from masklab.data.images import decode_image

    cfg = run.model.config
    if (upload is None) == (example is None):
        raise InputError("image", "give either an image upload ('image') or a built-in example index ('example')")
    if upload is None:
        example = check_example(run.examples, example)
        return run.examples[example : example + 1]
    if not (content_type or "").startswith("image/") or content_type in NOT_RASTER:
        raise InputError("image", f"expected a raster image file (PNG, JPEG, GIF, BMP, WebP, TIFF), got "
                         f"{content_type or 'no content type'}", 415)  # fmt: skip
    try:
        return decode_image(upload, image_size=tuple(cfg.image_size), channels=cfg.channels, name="upload",
                            max_pixels=MAX_PIXELS)  # fmt: skip
    except ValueError as err:
        raise image_error(err, "image", MAX_PIXELS) from None


def parse_masked(text: str, length: int) -> Tensor:
    """``"0110..."`` (``length`` characters, 1 = hidden) -> ``masked bool (1, L)``."""
    text = text.strip()
    if len(text) != length or set(text) - {"0", "1"}:
        raise InputError("masked", f"expected {length} characters 0/1 (one per patch, 1 = hidden), got {text[:40]!r}")
    return torch.tensor([c == "1" for c in text])[None]


def draw_masked(run: LoadedRun, masking: str, ratio: float, seed: int) -> Tensor:
    """A random (MAE) or block (BEiT) mask hiding ``ratio`` of the patches, seeded: ``masked bool (1, L)``."""
    from masklab.masks.generators import random_masking
    from masklab.masks.regions import block_masking

    cfg = run.model.config
    if not 0 < ratio < 1:
        raise InputError("ratio", f"expected a fraction in (0, 1), got {ratio}")
    generator = torch.Generator().manual_seed(seed)
    if masking == "random":
        return random_masking(1, cfg.num_patches, ratio, generator=generator).masked
    return block_masking(1, tuple(cfg.grid), ratio, generator=generator).masked


def choose_masked(run: LoadedRun, masking: str, masked: str | None, ratio: float, seed: int) -> Tensor:
    """The request's mask: painted (``masked``) or drawn (``random`` / ``block`` at ``ratio``)."""
    cfg = run.model.config
    if masking not in MASKINGS:
        raise InputError("masking", f"expected one of {', '.join(MASKINGS)}, got {masking!r}")
    if masking == "paint":
        if masked is None:
            raise InputError("masked", "masking 'paint' needs the painted mask ('masked': one 0/1 per patch)")
        out = parse_masked(masked, cfg.num_patches)
    else:
        out = draw_masked(run, masking, ratio, seed)
    hidden = int(out.sum())
    if hidden == 0:
        if masking != "paint":
            raise InputError("ratio", f"a ratio of {ratio} hides none of the {cfg.num_patches} patches (a higher "
                             "ratio)")  # fmt: skip
        raise InputError("masked", "no patch is hidden: paint at least one patch (or pick random / block)")
    if hidden == cfg.num_patches:
        if masking != "paint":
            raise InputError("ratio", f"a ratio of {ratio} hides every patch (all {cfg.num_patches}): "
                             "leave at least one visible for the encoder to read (a lower ratio)")  # fmt: skip
        raise InputError("masked", "every patch is hidden: leave at least one visible for the encoder to read")
    return out


def reconstruct(run: LoadedRun, images: Tensor, masked: Tensor) -> dict:
    """Masked input, reconstruction and reconstruction + visible of one image, with PSNR on the hidden pixels."""
    from masklab.eval.reconstruction import reconstruction_views

    views = reconstruction_views(run.model, images, masked)
    return {
        "masked": "".join("1" if m else "0" for m in masked[0].tolist()),
        "hidden_fraction": float(masked.float().mean()),
        "psnr_hidden": views.psnr[0],
        "original": png_data_url(images[0]),
        "masked_input": png_data_url(views.masked_input[0]),
        "reconstruction": png_data_url(views.reconstruction[0]),
        "pasted": png_data_url(views.pasted[0]),
    }


def rollout(run: LoadedRun, images: Tensor) -> dict:
    """The [CLS] token's attention rollout over the patches (Abnar & Zuidema 2020), scaled to [0, 1]."""
    from masklab.recipes.attention_maps import cls_row, image_attention_weights

    row = cls_row(image_attention_weights(run.model, images), None, None)  # (L,)
    scaled = (row - row.min()) / (row.max() - row.min()).clamp_min(1e-12)
    gh, gw = run.model.config.grid
    return {"grid": [gh, gw], "weights": [round(float(v), 4) for v in scaled], "image": png_data_url(images[0])}


def example_png(run: LoadedRun, index: int) -> bytes:
    """A held-out example as PNG bytes (field ``index``)."""
    return png_bytes(run.examples[check_example(run.examples, index, field="index", status=404)])
