import pytest


@pytest.fixture
def drawn(monkeypatch):
    """Every matplotlib figure saved while the test runs, in order (still saved: a text matplotlib cannot draw
    fails the test as it fails the picture)."""
    from matplotlib.figure import Figure

    figures = []
    save = Figure.savefig

    def spy(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    return figures
