"""attention and predict name their INPUT when it is the wrong kind of thing: an image given to a text run, an
array of the wrong channels (predict has no --data), an empty folder given as an image."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from masklab.recipes.attention_maps import load_image_input, read_text_input
from masklab.recipes.prediction import _image_inputs


def test_an_image_given_to_a_text_run_is_named(tmp_path):
    picture = tmp_path / "seven.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(ValueError, match=rf"^INPUT {picture} is not UTF-8 text; a text run .*takes a text"):
        read_text_input(str(picture))


def test_predict_calls_its_array_input_input_not_data(tmp_path):
    array = tmp_path / "arr3c.npy"
    np.save(array, np.zeros((2, 3, 8, 8), dtype=np.float32))
    cfg = SimpleNamespace(image_size=(8, 8), channels=1, patch_size=4)
    with pytest.raises(ValueError, match=rf"^INPUT {array} has 3-channel images"):
        _image_inputs(str(array), cfg, skip_bad=False)


def test_an_empty_folder_given_as_an_image_says_it_holds_no_image(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ValueError, match=rf"^INPUT {folder} is a folder holding no image"):
        load_image_input(str(folder), (8, 8), 1)
    (folder / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match=rf"^INPUT {folder} is a folder; attention reads one image file"):
        load_image_input(str(folder), (8, 8), 1)
