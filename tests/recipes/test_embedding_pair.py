"""``embed`` writes ``NAME.npy`` and ``NAME.index.csv``, which cannot be replaced in one step: a reader must never
pair the features of one write with the index of another (an embed killed between the two, two at once, a copied
file). The index is removed first and written last, and ``NAME.sha256`` records the pair for ``read_embedding``
(and ``sha256sum -c``)."""

import shutil
import subprocess

import numpy as np
import pytest

import masklab.core.io
from masklab.recipes.embedding import Embedding, write_embedding


def embedding(seed, rows=4):
    rng = np.random.default_rng(seed)
    return Embedding.of(rng.normal(size=(rows, 3)), [f"img{seed}_{i}.png" for i in range(rows)], None)


def killed_after_the_npy(monkeypatch):
    """``atomic_write_bytes`` stops the process (as ``kill -9`` would) when it comes to the index CSV."""
    write = masklab.core.io.atomic_write_bytes

    def dies_at_the_index(path, data):
        if str(path).endswith(".index.csv"):
            raise SystemExit("killed")
        return write(path, data)

    monkeypatch.setattr(masklab.core.io, "atomic_write_bytes", dies_at_the_index)


def test_a_write_killed_after_its_npy_leaves_no_old_index_beside_it(tmp_path, monkeypatch):
    out = tmp_path / "feats.npy"
    write_embedding(embedding(0), out)
    killed_after_the_npy(monkeypatch)
    with pytest.raises(SystemExit):
        write_embedding(embedding(1), out)
    assert np.array_equal(np.load(out), embedding(1).features)  # the new features ...
    assert not (tmp_path / "feats.index.csv").exists()  # ... and no index: never the old one's rows
    from masklab.recipes.embedding import read_embedding

    with pytest.raises(ValueError, match="has no row index") as refused:
        read_embedding(out)
    assert str(out) in str(refused.value) and str(tmp_path / "feats.index.csv") in str(refused.value)


def test_an_index_of_another_write_is_refused_naming_both_files(tmp_path):
    from masklab.recipes.embedding import read_embedding

    out, index = tmp_path / "feats.npy", tmp_path / "feats.index.csv"
    write_embedding(embedding(0), out)
    old_index = index.read_bytes()
    write_embedding(embedding(1), out)  # as many rows: only the checksums tell the pair apart
    back = read_embedding(out)
    assert np.array_equal(back.features, embedding(1).features) and back.sources == embedding(1).sources
    index.write_bytes(old_index)
    with pytest.raises(ValueError) as refused:
        read_embedding(out)
    message = str(refused.value)
    assert "\n" not in message and str(out) in message and str(index) in message, message
    assert "not one embed's output" in message and str(tmp_path / "feats.sha256") in message


def test_the_checksums_are_sha256sum_format(tmp_path):
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum")
    write_embedding(embedding(0), tmp_path / "feats.npy")
    check = ["sha256sum", "--quiet", "-c", "feats.sha256"]
    subprocess.run(check, cwd=tmp_path, check=True)
    (tmp_path / "feats.index.csv").write_text("row,source,label\n0,x,\n")
    assert subprocess.run(check, cwd=tmp_path, capture_output=True).returncode != 0


def test_a_pair_written_before_the_checksums_is_read_when_its_rows_agree(tmp_path):
    from masklab.recipes.embedding import read_embedding

    out = tmp_path / "feats.npy"
    write_embedding(embedding(0), out)
    (tmp_path / "feats.sha256").unlink()
    assert read_embedding(out).sources == embedding(0).sources
    write_embedding(embedding(1, rows=5), tmp_path / "other.npy")
    shutil.copy(tmp_path / "other.npy", out)
    with pytest.raises(ValueError, match=r"holds 5 rows but .*feats\.index\.csv indexes 4"):
        read_embedding(out)
