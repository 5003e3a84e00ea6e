"""Pictures with transparent pixels are read without alpha (as training reads them), so a transparent pixel
shows, and goes into the model as, its stored colour (usually black). Each command that reads such a picture
says so once; an opaque RGBA picture is not named."""

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main
from masklab.data.image_files import has_transparency, open_image
from masklab.data.pixel_masks import write_mask

NOTE = "1 picture had transparency; transparent pixels use their stored colour"


def rgba(path, transparent: bool):
    pixels = np.random.default_rng(0).integers(0, 255, (16, 16, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    if transparent:
        pixels[:8, :, 3] = 0
        pixels[:8, :, :3] = 0  # stored black under the transparency
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def test_has_transparency(tmp_path):
    assert has_transparency(open_image(rgba(tmp_path / "t.png", True)))
    assert not has_transparency(open_image(rgba(tmp_path / "o.png", False)))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "g.png", transparency=0)  # tRNS gray
    assert has_transparency(open_image(tmp_path / "g.png"))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "plain.png")
    assert not has_transparency(open_image(tmp_path / "plain.png"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "1",
                 "--batch-size", "8", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    return out


@pytest.mark.parametrize("transparent", [True, False])
def test_each_command_notes_transparency_once(run, tmp_path, capsys, transparent):
    picture = rgba(tmp_path / "pic.png", transparent)
    mask = np.zeros((16, 16), dtype=bool)
    mask[0:3, 0:3] = True  # one patch of the 2x2 grid the 8x8 digits model sees
    mask_path = write_mask(tmp_path / "mask.png", mask)
    capsys.readouterr()
    commands = [
        ["reconstruct", str(run), str(picture), "-o", str(tmp_path / "r.png")],
        ["inpaint", str(run), str(picture), "--mask-image", str(mask_path), "-o", str(tmp_path / "i.png")],
        ["attention", str(run), str(picture), "-o", str(tmp_path / "a.png")],
        ["edit", str(run), str(picture), "--blur-background", "--mask", str(mask_path), "-o", str(tmp_path / "e.png")],
    ]
    for argv in commands:
        assert main(argv) == 0, argv[0]
        err = capsys.readouterr().err
        assert err.count(NOTE) == (1 if transparent else 0), (argv[0], err)
