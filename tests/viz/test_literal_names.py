"""A ``$`` in a file, run, column, class, series or token name is a dollar sign in every picture: matplotlib read
two of them as mathtext, so ``fx_$USD_$EUR`` failed the picture (after the scores CSV was written) and
``q$1$.png`` was titled ``q1.png``. Every viz function draws such text with :data:`masklab.viz.literal.LITERAL`."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.text import Text

NAME = "fx_$USD_$EUR"  # two dollars: mathtext, which cannot parse "USD_" -> the figure failed to save


def _named(figure, text: str = NAME) -> list[Text]:
    """Every text of ``figure`` that carries ``text``, each checked to be drawn as written."""
    found = [t for t in figure.findobj(Text) if text in t.get_text()]
    assert found, f"no text carries {text!r}"
    for t in found:
        assert not t.get_parse_math() and not t.get_usetex(), f"{t.get_text()!r} is drawn as mathtext"
    return found


def test_histogram(tmp_path, drawn):
    from masklab.viz.histogram import plot_score_histogram

    plot_score_histogram(np.array([1.0, 2.0, 3.0]), tmp_path / "h.png", title=NAME)
    _named(drawn[-1])
    assert drawn[-1].axes[0].get_title() == NAME


def test_loss_curve_of_a_run_named_with_dollars(tmp_path, drawn):
    from masklab.viz.curves import write_run_loss_plot

    run = tmp_path / "exp_$5_$6"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)))
    assert write_run_loss_plot(run) is None
    assert (run / "loss.png").is_file()
    assert drawn[-1].axes[0].get_title().startswith("exp_$5_$6: loss")
    _named(drawn[-1], "exp_$5_$6")


def test_explanations(tmp_path, drawn):
    from masklab.viz.explain import plot_explanations

    explanation = pd.DataFrame({"data_row": [1, 1], "anomaly_score": [2.0, 2.0], "column": [NAME, "b"],
                                "share": [0.7, 0.3], "observed": [NAME, 1.0], "expected": ["$x$", 2.0]})  # fmt: skip
    plot_explanations(explanation, tmp_path / "e.png", title=NAME)
    texts = _named(drawn[-1])
    assert any(t.get_text() == NAME for t in texts)  # the column's tick label
    assert drawn[-1].axes[0].get_title().startswith(NAME + "\n")
    _named(drawn[-1], "$x$")  # a cell value


def test_confusion(tmp_path, drawn):
    from masklab.viz.confusion import plot_confusion

    plot_confusion(torch.tensor([[3, 1], [0, 2]]), [NAME, "q$1$"], tmp_path / "c.png", title=NAME)
    assert drawn[-1].axes[0].get_title() == NAME
    assert any(t.get_text() == "q$1$" for t in _named(drawn[-1], "q$1$"))  # a class name
    _named(drawn[-1])


def test_attention(tmp_path, drawn):
    from masklab.viz.attention import attention_heatmaps, attention_overlay, rollout_overlay

    weights = [torch.softmax(torch.randn(2, 3, 3), -1)]
    attention_heatmaps(weights, [NAME, "a", "b"], tmp_path / "a.png", title=NAME)
    assert drawn[-1]._suptitle.get_text() == NAME
    assert any(t.get_text() == NAME for t in _named(drawn[-1]))
    image = torch.rand(3, 8, 8)
    rollout_overlay(image, torch.rand(4), (2, 2), tmp_path / "r.png", title="q$1$.png")
    assert drawn[-1]._suptitle.get_text() == "q$1$.png"
    _named(drawn[-1], "q$1$.png")
    attention_overlay(image, torch.rand(4), (2, 2), tmp_path / "o.png", label=NAME, title=NAME)
    assert drawn[-1]._suptitle.get_text() == NAME
    assert len(_named(drawn[-1])) == 2  # the title and the panel's label


def test_masks(tmp_path, drawn):
    from masklab.viz.masks import render_masks

    images = torch.rand(2, 3, 8, 8)
    hidden = torch.zeros(2, 16, dtype=torch.bool)
    render_masks(tmp_path / "m.png", ("random",), grid=(4, 4), count=2, images=images, source=NAME,
                 extra_rows=[(NAME, hidden)])  # fmt: skip
    assert NAME in drawn[-1]._suptitle.get_text()
    assert len(_named(drawn[-1])) == 2  # the title and the extra row's label


@pytest.mark.parametrize("what", ["reconstructions", "forecasts"])
def test_series(tmp_path, drawn, what):
    from masklab.viz.series import plot_forecasts, plot_reconstructions

    x = np.random.default_rng(0).normal(size=(12, 1))
    if what == "reconstructions":
        plot_reconstructions([x], [x > 0], [x], tmp_path / "s.png", titles=[NAME])
    else:
        plot_forecasts([x], [x[:3]], tmp_path / "s.png", titles=[NAME])
    assert drawn[-1].axes[0].get_title().startswith(NAME)
    _named(drawn[-1])


def test_grid_titles_are_drawn_by_pillow(tmp_path):
    from masklab.viz.grids import save_grid

    assert save_grid(tmp_path / "g.png", [[torch.rand(1, 4, 4)]], titles=[NAME]).is_file()  # no mathtext there
