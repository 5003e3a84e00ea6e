"""``masks``: example masks of each generator kind as a PNG (hidden = shaded; masks True = hidden)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

KINDS = ("random", "block", "span", "grid", "learned")


def _run_model(run: str):
    """The MAE of a pretraining run (the only runs whose masks are drawn over images)."""
    from masklab.recipes.mae import load_mae_run

    if not (Path(run) / "config.json").is_file():
        raise ValueError(f"--run {run}: no config.json there (not a masklab run directory)")
    model = load_mae_run(run, "cpu").eval()  # ValueError naming the kind for a run that is not an MAE
    if model.config.objective != "reconstruct":
        raise ValueError(f"--run {run} is a fine-tuned classifier; give a pretraining run")
    return model


def masks(
    output: str | Path,
    *,
    kinds: Sequence[str] | None = None,
    grid: tuple[int, int] = (14, 14),
    ratio: float = 0.75,
    count: int = 8,
    seed: int = 0,
    data: str | None = None,
    run: str | None = None,
) -> list[str]:
    """Draw ``count`` masks per generator kind (default: all that fit the grid and ratio), a row each, on a
    ``grid`` token grid, over ``data`` images (``"none"``: bare grids; default: the run's own data with ``run``,
    else ``builtin:mnist5k``). With ``run`` (an MAE run) a row of the run's own training masks is added and the
    grid and ratio become the run's. Returns the report lines."""
    from masklab.recipes.common import check_picture_output, figure_formats
    from masklab.viz.masks import grid_cell_for, render_masks

    check_picture_output(output, figure_formats(), "masks")
    if not 0 <= ratio < 1:
        raise ValueError(f"--ratio must be in [0, 1), got {ratio}")
    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    lines: list[str] = []
    model = None
    if run is not None:
        from masklab.recipes.mae import DATA_FILE, DEFAULT_DATA, read_data_info, run_data

        model = _run_model(run)
        grid, ratio = model.config.grid, model.config.mask_ratio
        recorded = read_data_info(run).get("spec")  # images the run can read (size, channels)
        data, _ = run_data(data, recorded, Path(run) / DATA_FILE, DEFAULT_DATA)
        if data == "none":
            raise ValueError("--run draws the run's masks of real images: give --data, not 'none'")
    data = data or "builtin:mnist5k"
    kinds = list(kinds) if kinds is not None else None
    if kinds is None and model is not None:
        kinds = ["random"]  # the reference row next to the run's own masks
    if kinds is None:  # all kinds, except grid masking where the grid has no cell size for this ratio
        kinds = list(KINDS if data != "none" else KINDS[:-1])
        try:
            grid_cell_for(ratio, grid)
        except ValueError as err:
            kinds.remove("grid")
            lines.append(f"skipping grid: {err}")
    images, source = None, ""
    if data != "none":
        from masklab.data.images import load_images

        size = None if model is None else model.config.image_size
        channels = None if model is None else model.config.channels
        dataset = load_images(data, image_size=size, channels=channels)
        if len(dataset) < count:
            raise ValueError(f"--data {data} has {len(dataset)} images, fewer than --count {count}")
        # A seeded draw, not the first COUNT rows: mnist5k is sorted by class.
        pick = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
        images, source = dataset.images(pick), data
    elif "learned" in kinds:
        raise ValueError("--kind learned scores image patches: give --data (e.g. builtin:mnist5k), not 'none'")
    extra = []
    if model is not None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            masked = model.sample_mask(count, generator=generator, x=model.normalize(images)).masked
        extra.append((f"run: {model.config.mask_kind}", masked))
    path = render_masks(output, kinds, grid=grid, ratio=ratio, count=count, seed=seed, images=images,
                        source=source, extra_rows=extra)  # fmt: skip
    lines.append(f"wrote {path}: {len(kinds) + len(extra)} rows x {count} masks on a {grid[0]}x{grid[1]} grid")
    return lines
