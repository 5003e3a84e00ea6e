"""``exchange_paths`` swaps two folders in one step (Linux renameat2 RENAME_EXCHANGE), or says it cannot."""

import sys

import pytest

from masklab.core.io import exchange_paths


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_two_folders_swap_their_contents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("A")
    (b / "y").write_text("B")
    assert exchange_paths(a, b) is True
    assert [p.name for p in a.iterdir()] == ["y"] and [p.name for p in b.iterdir()] == ["x"]
    with pytest.raises(FileNotFoundError):  # a real failure is an error, not "cannot"
        exchange_paths(tmp_path / "missing", b)
