"""``masklab masks``: example masks of each generator rendered as a PNG."""

import pytest
import torch
from PIL import Image

from masklab.cli import main
from masklab.viz.masks import MASK_KINDS, example_masks, grid_cell_for, render_masks


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_example_masks_hide_the_requested_share(kind):
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    masked = example_masks(kind, 4, (14, 14), 0.75, torch.Generator().manual_seed(1), images=images)
    assert masked.shape == (4, 196) and masked.dtype == torch.bool
    assert masked.sum(1).tolist() == [196 - int(196 * 0.25)] * 4  # 147: every kind meets MAE's budget here
    again = example_masks(kind, 4, (14, 14), 0.75, torch.Generator().manual_seed(1), images=images)
    assert torch.equal(masked, again)


def test_grid_cell_choice_and_errors():
    assert grid_cell_for(0.75, (14, 14)) == 2
    assert grid_cell_for(0.89, (9, 9)) == 3
    with pytest.raises(ValueError, match=r"possible ratios: 0.98 \(k=7\)"):
        grid_cell_for(0.75, (7, 7))
    with pytest.raises(ValueError, match="possible ratios: none"):
        grid_cell_for(0.75, (5, 7))
    with pytest.raises(ValueError, match="images"):
        example_masks("learned", 2, (7, 7), 0.5, torch.Generator())
    with pytest.raises(ValueError, match="unknown mask kind"):
        example_masks("diagonal", 2, (7, 7), 0.5, torch.Generator())


def test_render_writes_a_png_with_a_row_per_kind(tmp_path):
    images = torch.rand(3, 1, 28, 28)
    two = render_masks(tmp_path / "two.png", ("random", "learned"), grid=(7, 7), count=3, images=images)
    four = render_masks(tmp_path / "four.png", ("random", "block", "span", "grid"), grid=(8, 8), count=3)
    with Image.open(two) as a, Image.open(four) as b:
        assert a.width == b.width and b.height > a.height


def test_cli_masks_bare_and_errors(tmp_path, capsys):
    out = tmp_path / "masks.png"
    assert main(["masks", "--data", "none", "--kind", "random", "block", "--grid", "8x8", "--count", "2",
                 "-o", str(out)]) == 0  # fmt: skip
    assert out.is_file() and "2 rows x 2 masks" in capsys.readouterr().out
    assert main(["masks", "--data", "none", "--kind", "learned", "-o", str(out)]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["masks", "--data", "none", "--ratio", "1.0", "-o", str(out)]) == 2
    assert main(["masks", "--data", "none", "--kind", "grid", "--grid", "7x7", "-o", str(out)]) == 2
    assert "divisible" in capsys.readouterr().err
    # The default kinds leave out grid masking where the grid has no cell size for the ratio, and say so.
    assert main(["masks", "--data", "none", "--grid", "7x7", "--count", "2", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipping grid" in printed and "3 rows x 2 masks" in printed


def test_masks_of_a_trained_run(tmp_path, capsys):
    from PIL import Image

    from masklab.cli import main

    run = tmp_path / "run"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "2",
                 "--batch-size", "16", "--device", "cpu", "--mask", "learned", "--out", str(run)]) == 0  # fmt: skip
    out = tmp_path / "masks.png"
    assert main(["masks", "--run", str(run), "--data", "builtin:digits", "--count", "3", "-o", str(out)]) == 0
    assert "2 rows x 3 masks on a 2x2 grid" in capsys.readouterr().out  # random + the run's own (8x8, patch 4)
    assert Image.open(out).size[0] > 100
    assert main(["masks", "--run", str(tmp_path), "-o", str(out)]) == 2
    assert "no config.json there" in capsys.readouterr().err


def test_masks_of_an_rgb_run_default_to_the_runs_own_images(tmp_path, capsys):
    import numpy as np

    from masklab.cli import main

    np.save(tmp_path / "rgb.npy", np.random.default_rng(0).integers(0, 255, (20, 8, 8, 3), dtype=np.uint8))
    run = tmp_path / "run"
    assert main(["pretrain", "mae", "--data", str(tmp_path / "rgb.npy"), "--preset", "mae-tiny", "--steps", "1",
                 "--batch-size", "8", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    # No --data: the run's own (3-channel) images, not MNIST's single channel.
    assert main(["masks", "--run", str(run), "--count", "2", "-o", str(tmp_path / "m.png")]) == 0
    assert "2 rows x 2 masks on a 2x2 grid" in capsys.readouterr().out
