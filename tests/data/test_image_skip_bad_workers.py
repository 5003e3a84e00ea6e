"""``pretrain mae --skip-bad`` leaves out the same images whatever ``--workers`` is: the streaming index (used
with workers) read only headers, so a truncated PNG passed it and failed later in a worker's decode; the
split then depended on --workers (15/4 vs 16/4), and with several truncated files --workers 2 failed."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main
from masklab.data.image_stream import index_image_folder


def _folder(tmp_path, truncated: int):
    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(data / f"{i:02d}.png")
    for i in range(truncated):  # a valid header, the pixel data cut short
        path = data / f"{i * 5:02d}.png"
        path.write_bytes(path.read_bytes()[:120])
    return data


def test_index_decodes_when_skipping(tmp_path):
    data = _folder(tmp_path, 4)
    index = index_image_folder(data, cache=tmp_path / "index.json", skip_bad=True)
    assert sorted(index.skipped) == sorted(str(data / f"{i * 5:02d}.png") for i in range(4))
    assert json.loads((tmp_path / "index.json").read_text())["key"]["decoded"] is True
    with pytest.raises(ValueError, match="cannot read image"):  # without --skip-bad: named at the first decode
        from masklab.data.images import load_images

        stream = load_images(str(data), image_size=(16, 16), stream=True)
        stream.images()


@pytest.mark.parametrize("truncated", [1, 4])
def test_split_and_skips_do_not_depend_on_workers(tmp_path, capsys, truncated):
    data = _folder(tmp_path, truncated)
    seen = {}
    for workers in (0, 2):
        out = tmp_path / f"run{workers}"
        argv = ["pretrain", "mae", "--data", str(data), "--preset", "mae-tiny", "--image-size", "16", "--patch-size",
                "4", "--steps", "1", "--batch-size", "4", "--device", "cpu", "--skip-bad", "--workers", str(workers),
                "--out", str(out)]  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
        err = capsys.readouterr().err
        info = json.loads((out / "data.json").read_text())
        skipped = re.search(r"skipped \d+ images?.*", err)
        seen[workers] = (info["num_train"], info["num_test"], skipped and skipped.group(0))
    assert seen[0] == seen[2]
    assert seen[0][0] + seen[0][1] == 20 - truncated
