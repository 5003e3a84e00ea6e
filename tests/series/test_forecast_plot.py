"""``masklab forecast --plot``: the panels name their channel, the run says it wrote the picture, and --count is
capped (400 panels took 14 minutes and a 770 x 66,880 px PNG) while the forecasts still cover every series."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("forecast")
    rng = np.random.default_rng(0)
    n, length = 30, 32
    t = np.arange(length)
    values = np.stack([np.stack([np.sin(t * (0.2 + 0.01 * i)), np.cos(t * 0.3)], -1) for i in range(n)])
    values = (values + 0.05 * rng.normal(size=values.shape)).astype(np.float32)
    np.savez(root / "s.npz", values=values, lengths=np.full(n, length))
    code = main(["pretrain", "series", "--data", str(root / "s.npz"), "--preset", "series-tiny", "--steps", "2",
                 "--batch-size", "8", "--out", str(root / "run"), "--device", "cpu"])  # fmt: skip
    assert code == 0
    return root


def test_plot_is_capped_names_its_channel_and_is_announced(run, tmp_path, capsys, monkeypatch):
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figures.append(self), save(self, *a, **k))[1])
    capsys.readouterr()
    argv = ["forecast", str(run / "run"), "--horizon", "4", "--plot", str(tmp_path / "f.png"), "--count", "400",
            "-o", str(tmp_path / "f.npz")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"masklab: wrote {tmp_path / 'f.png'}" in out, out
    assert "24 of 30 series" in out and "capped at 24" in out, out
    titles = [ax.get_title() for ax in figures[-1].axes]
    assert len(titles) == 24 and all(title.endswith(", channel 0") for title in titles), titles
    assert np.load(tmp_path / "f.npz")["values"].shape == (30, 4, 2)  # every series is still forecast

    assert main([*argv[:6], "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "held-out forecasts of 2 of 30 series, channel 0\n" in out, out
