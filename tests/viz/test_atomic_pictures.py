"""reconstruct, inpaint, attention and masks write their pictures whole or not at all: rendered in memory, then
renamed over the target, so a crash while encoding leaves the old file (or none), never a partial one."""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import PIL.Image
import pytest
import torch

from masklab.viz.attention import attention_heatmaps, attention_overlay
from masklab.viz.grids import save_grid, save_image
from masklab.viz.masks import render_masks

IMAGE = torch.rand(1, 8, 8)
DRAW = {
    "grid": (lambda p: save_grid(p, [[IMAGE, IMAGE]], titles=["a", "b"]), "pil"),
    "image": (lambda p: save_image(p, IMAGE), "pil"),
    "heatmaps": (lambda p: attention_heatmaps([torch.rand(2, 3, 3)], ["a", "b", "c"], p), "figure"),
    "overlay": (lambda p: attention_overlay(IMAGE, torch.rand(4), (2, 2), p, label="x"), "figure"),
    "masks": (lambda p: render_masks(p, ["random"], grid=(2, 2), ratio=0.5, count=1), "figure"),
}


def broken_writer(original):
    def write(self, fp, *args, **kwargs):  # writes a few bytes, then fails as a full disk or Ctrl-C would
        if isinstance(fp, (str, Path)):
            Path(fp).write_bytes(b"partial")
        else:
            fp.write(b"partial")
        raise OSError("disk full")

    return write


@pytest.mark.parametrize("name", sorted(DRAW))
def test_a_failure_while_encoding_leaves_the_old_file(tmp_path, monkeypatch, name):
    draw, kind = DRAW[name]
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    if kind == "pil":
        monkeypatch.setattr(PIL.Image.Image, "save", broken_writer(PIL.Image.Image.save))
    else:
        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_writer(matplotlib.figure.Figure.savefig))
    with pytest.raises(OSError, match="disk full"):
        draw(target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temp file left either


@pytest.mark.parametrize("name", sorted(DRAW))
def test_the_picture_is_renamed_into_place(tmp_path, monkeypatch, name):
    import os

    draw, _ = DRAW[name]
    renamed = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renamed.append(Path(b)), real(a, b))[1])
    target = tmp_path / "sub" / "out.png"
    assert draw(target) == target
    assert renamed == [target]
    assert target.read_bytes().startswith(b"\x89PNG")
