"""What each mask generator does, as a picture: a row of example masks per generator kind.

Every kind is drawn on a ``gh x gw`` token grid (row-major, patchify order); without pictures hidden tokens
(``masked`` True) are black. With example images (e.g. mnist5k digits) each mask is drawn over a picture, so
one sees which parts of the digit a generator hides: under a hidden token the picture is greyed, darkened and
striped black and white (:func:`shade_hidden`), which tells it from the visible cells whatever their colour,
the picture staying faintly visible. The learned masker then scores the actual patches of that picture.
Needs matplotlib (``masklab[viz]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklab.masks.generators import grid_masking, random_masking
from masklab.masks.regions import block_masking, span_masking
from masklab.viz.literal import LITERAL

MASK_KINDS = ("random", "block", "span", "grid", "learned")
HIDDEN = "hidden = greyed, striped"  # what shade_hidden does, as the title says it


def grid_cell_for(ratio: float, grid: tuple[int, int], tolerance: float = 0.05) -> int:
    """Cell side ``k`` of grid masking (one visible token per ``k x k``, ratio ``1 - 1/k²``) closest to ``ratio``
    among those that divide the grid; ``ValueError`` when none comes within ``tolerance`` of ``ratio``."""
    gh, gw = grid
    cells = [k for k in range(2, min(gh, gw) + 1) if gh % k == 0 and gw % k == 0]
    best = min(cells, key=lambda k: abs(1 - 1 / k**2 - ratio), default=None)
    if best is None or abs(1 - 1 / best**2 - ratio) > tolerance:
        options = ", ".join(f"{1 - 1 / k**2:.3g} (k={k})" for k in cells) or "none"
        raise ValueError(f"grid masking on a {gh}x{gw} grid (divisible by k) cannot hide {ratio:g}; "
                         f"possible ratios: {options}")  # fmt: skip
    return best


def fit_images_to_grid(images: Tensor, grid: tuple[int, int]) -> tuple[Tensor, int]:
    """Resize ``images (N, C, H, W)`` to ``(gh * p, gw * p)`` with ``p = ceil(max(H / gh, W / gw))`` -> (images, p)."""
    gh, gw = grid
    H, W = images.shape[-2:]
    p = max(1, -(-H // gh), -(-W // gw))
    if (gh * p, gw * p) != (H, W):
        images = F.interpolate(images, size=(gh * p, gw * p), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, p


def learned_masks(images: Tensor, grid: tuple[int, int], ratio: float, generator: torch.Generator) -> Tensor:
    """Masks ``(N, L)`` from an UNTRAINED learned masker over the patches of ``images (N, C, H, W)``.

    The masker's head is re-initialised with unit-variance weights (its default zero head would give
    uniform random masks), so the picture shows the content-dependent masks a random network proposes.
    """
    from masklab.masks.learned import sample
    from masklab.models.mae.masker import LearnedMasker, LearnedMaskerConfig
    from masklab.tokenizers.patches import patchify

    fitted, p = fit_images_to_grid(images, grid)
    patches = patchify(fitted, p)  # (N, L, P)
    patches = (patches - patches.mean()) / patches.std().clamp_min(1e-6)  # unit scale, as the MAE feeds it
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the masker's random init comes from the caller's seed
        masker = LearnedMasker(LearnedMaskerConfig(in_dim=patches.shape[-1], max_tokens=patches.shape[1]))
        torch.nn.init.normal_(masker.head.weight, std=1.0)
    with torch.no_grad():
        logits = masker(patches)
    return sample(logits, ratio, generator).masked


def shade_hidden(picture: np.ndarray, cells: np.ndarray, *, min_cell: int = 8) -> np.ndarray:
    """``picture (H, W, C)`` (C = 1 or 3, in [0, 1]; H and W multiples of ``cells``' ``gh`` and ``gw``) as RGB
    ``(H * f, W * f, 3)``, enlarged (nearest) so a cell is at least ``min_cell`` pixels, with the pixels under each
    hidden cell (``cells (gh, gw)`` True = hidden) turned to darkened grey (``0.15 + 0.45 * luminance``) crossed by
    diagonal stripes, one white and one black every six pixels: hidden cells stand out on any content (on blue,
    black or white alike) and the picture still shows faintly under them."""
    picture = np.repeat(picture, 3, axis=-1) if picture.shape[-1] == 1 else picture
    gh, gw = cells.shape
    H, W = picture.shape[:2]
    f = max(1, -(-min_cell // max(1, min(H // gh, W // gw))))
    picture = picture.repeat(f, axis=0).repeat(f, axis=1)
    under = cells.astype(bool).repeat(H * f // gh, axis=0).repeat(W * f // gw, axis=1)  # (H * f, W * f)
    grey = 0.15 + 0.45 * (picture @ np.array([0.299, 0.587, 0.114]))
    yy, xx = np.indices(under.shape)
    stripe = (yy + xx) % 6
    grey = np.where(stripe == 0, 1.0, np.where(stripe == 3, 0.0, grey))
    return np.where(under[..., None], grey[..., None], picture).clip(0, 1)


def example_masks(
    kind: str,
    count: int,
    grid: tuple[int, int],
    ratio: float,
    generator: torch.Generator,
    images: Tensor | None = None,
) -> Tensor:
    """``masked`` bool (count, gh * gw), True = hidden, from generator ``kind`` (see :data:`MASK_KINDS`).

    ``span`` is SpanBERT's 1-D masking over the row-major token order (spans show as horizontal runs);
    ``grid`` uses the cell size whose ratio is closest to ``ratio``; ``learned`` needs ``images``.
    """
    gh, gw = grid
    length = gh * gw
    if kind == "random":
        return random_masking(count, length, ratio, generator=generator).masked
    if kind == "block":
        return block_masking(count, grid, ratio, generator=generator).masked
    if kind == "span":
        return span_masking(count, length, ratio, generator=generator).masked
    if kind == "grid":
        return grid_masking(count, grid, grid_cell_for(ratio, grid), generator=generator).masked
    if kind == "learned":
        if images is None:
            raise ValueError("learned masks are drawn from images: give example images (e.g. builtin:mnist5k)")
        return learned_masks(images[:count], grid, ratio, generator)
    raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(MASK_KINDS)}")


def render_masks(
    path: str | Path,
    kinds: Sequence[str] = MASK_KINDS,
    *,
    grid: tuple[int, int] = (14, 14),
    ratio: float = 0.75,
    count: int = 8,
    seed: int = 0,
    images: Tensor | None = None,
    source: str = "",
    extra_rows: Sequence[tuple[str, Tensor]] = (),
) -> Path:
    """Draw ``count`` example masks per kind (one row each) to the PNG ``path``; returns the path.

    ``images (N >= count, C, H, W)`` in [0, 1], if given, are drawn under the masks (the same pictures in
    every row); ``source`` names them in the title. ``extra_rows``: ``(label, masked bool (count, gh * gw))``
    rows drawn after the kinds, e.g. a trained model's own masks of these images.
    """
    from matplotlib.figure import Figure

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not kinds and not extra_rows:
        raise ValueError(f"choose at least one mask kind of {', '.join(MASK_KINDS)}")
    for label, masked in extra_rows:
        if masked.shape != (count, grid[0] * grid[1]) or masked.dtype != torch.bool:
            raise ValueError(f"row {label!r}: masks must be bool ({count}, {grid[0] * grid[1]}), got "
                             f"{masked.dtype} {tuple(masked.shape)}")  # fmt: skip
    if images is not None and len(images) < count:
        raise ValueError(f"{count} examples requested but only {len(images)} images given")
    gh, gw = grid
    shown = None if images is None else fit_images_to_grid(images[:count], grid)[0]
    rows: list[str | tuple[str, Tensor]] = [*kinds, *extra_rows]
    # At least 5 in wide, so the two-line title fits over a single column of masks too.
    fig = Figure(figsize=(max(1.35 * count + 1.6, 5.0), 1.45 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), count, squeeze=False)
    for r, kind in enumerate(rows):
        if isinstance(kind, tuple):
            label, masked = kind
        else:
            generator = torch.Generator().manual_seed(seed + r)  # each row replays from the seed on its own
            masked = example_masks(kind, count, grid, ratio, generator, images=shown)  # (count, L)
            label = "learned (untrained,\nrandom-init masker)" if kind == "learned" else kind
        for c in range(count):
            ax = axes[r][c]
            cells = masked[c].view(gh, gw).float().numpy()
            if shown is not None:
                picture = shade_hidden(shown[c].permute(1, 2, 0).numpy(), cells > 0.5)
                ax.imshow(picture, extent=(0, gw, gh, 0))
            else:
                ax.imshow(1 - cells, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{label}\n{masked[c].float().mean():.0%} hidden", fontsize=8, **LITERAL)
    what = f" over {source}" if source and images is not None else ""
    fig.suptitle(f"example masks{what}\n{gh}x{gw} tokens, ratio {ratio:g}, seed {seed} "
                 f"({HIDDEN if images is not None else 'black = hidden'})", fontsize=10, **LITERAL)  # fmt: skip
    from masklab.core.io import atomic_write_figure

    return atomic_write_figure(fig, path, dpi=110)
