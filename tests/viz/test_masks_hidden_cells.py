"""Hidden cells of the mask picture stand out on any content: they were a blue tint, which on blue pictures
looked like the visible cells although the title said 'blue = hidden'."""

import numpy as np
import pytest
import torch


def _cells(figure, gh: int, gw: int) -> tuple[np.ndarray, np.ndarray]:
    """The rendered figure's mean RGB (in [0, 1]) over the inner half of each grid cell of its first axes, and
    the standard deviation of its pixels there (the texture: the stripes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3] / 255.0
    box = figure.axes[0].get_window_extent()
    height = pixels.shape[0]
    means, spread = np.zeros((gh, gw, 3)), np.zeros((gh, gw))
    for r in range(gh):
        for c in range(gw):
            x0, x1 = box.x0 + (c + 0.25) * box.width / gw, box.x0 + (c + 0.75) * box.width / gw
            y0, y1 = box.y1 - (r + 0.75) * box.height / gh, box.y1 - (r + 0.25) * box.height / gh
            inside = pixels[height - int(y1) : height - int(y0), int(x0) : int(x1)].reshape(-1, 3)
            means[r, c], spread[r, c] = inside.mean(0), inside.std(0).mean()
    return means, spread


@pytest.mark.parametrize("colour", [(0.0, 0.0, 1.0), (0.2, 0.4, 0.95), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.5,) * 3])
def test_hidden_cells_differ_from_visible_ones_on_any_colour(tmp_path, drawn, colour):
    from masklab.viz.masks import render_masks

    image = torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, 8, 8).clone()
    hidden = torch.zeros(4, 4, dtype=torch.bool)
    hidden[:, :2] = True  # the left half
    render_masks(tmp_path / "m.png", (), grid=(4, 4), count=1, images=image, extra_rows=[("mine", hidden.view(1, 16))])
    means, spread = _cells(drawn[-1], 4, 4)
    visible, shaded = means[:, 2:].reshape(-1, 3), means[:, :2].reshape(-1, 3)
    np.testing.assert_allclose(visible, np.tile(colour, (8, 1)), atol=0.02)  # the picture as it is
    assert spread[:, 2:].max() < 0.02
    # Each hidden cell is far from every visible one in colour, or plainly textured where they are flat.
    gap = np.linalg.norm(shaded[:, None] - visible[None], axis=-1).min(1)
    clear = (gap > 0.3) | (spread[:, :2].reshape(-1) > 0.15)
    assert clear.all(), f"on {colour}: colour gaps {gap.round(2)}, texture {spread[:, :2].round(2)}"
    assert "blue" not in drawn[-1]._suptitle.get_text()


def test_shade_hidden_keeps_visible_pixels():
    from masklab.viz.masks import shade_hidden

    picture = np.random.default_rng(0).random((8, 8, 3))
    cells = np.array([[True, False], [False, False]])
    out = shade_hidden(picture, cells, min_cell=4)  # a cell is already 4 pixels: no enlargement
    np.testing.assert_array_equal(out[4:], picture[4:])
    np.testing.assert_array_equal(out[:4, 4:], picture[:4, 4:])
    assert {0.0, 1.0} <= set(np.unique(out[:4, :4]))  # the black and white stripes
