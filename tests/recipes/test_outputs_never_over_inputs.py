"""embed, reconstruct, inpaint, attention and predict refuse, before any work, an output that is one of their
inputs (by any name) or one of a run folder's own files (the run path here does not exist: nothing is loaded)."""

from __future__ import annotations

import numpy as np
import pytest

from masklab.recipes.attention_maps import attention
from masklab.recipes.common import check_output_is_not_run_file, check_outputs
from masklab.recipes.embedding import Embedding, check_output, write_embedding
from masklab.recipes.images import inpaint, reconstruct
from masklab.recipes.prediction import predict


@pytest.fixture
def files(tmp_path):
    for name in ("seven.png", "mask.png", "arr.npy"):
        (tmp_path / name).write_bytes(b"input " + name.encode())
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "metrics.json", "checkpoint.safetensors", "text.json"):
        (run / name).write_text("{}")
    return tmp_path


def calls(out, weights=None):
    no_run = out.parent.parent / "no-run"
    return {
        "reconstruct IMAGE": lambda d: reconstruct(no_run, out, images=[str(d / "seven.png")]),
        "reconstruct --data": lambda d: reconstruct(no_run, out, data=str(d / "arr.npy")),
        "inpaint IMAGE": lambda d: inpaint(no_run, d / "seven.png", d / "mask.png", out),
        "inpaint --mask-image": lambda d: inpaint(no_run, d / "seven.png", d / "mask.png", out),
        "attention": lambda d: attention(str(no_run), str(d / "seven.png"), out, weights_out=weights),
        "predict": lambda d: predict(no_run, d / "seven.png", output=out),
    }


@pytest.mark.parametrize(
    ("call", "name", "says"),
    [
        ("reconstruct IMAGE", "seven.png", "is the input file; reconstruct never"),
        ("reconstruct --data", "arr.npy", "is the --data file; reconstruct never"),
        ("inpaint IMAGE", "seven.png", "is the input file; inpaint never"),
        ("inpaint --mask-image", "mask.png", "is the --mask-image file; inpaint never"),
        ("attention", "seven.png", "is the input file; attention never"),
        ("predict", "seven.png", "is the input itself; write the predictions elsewhere"),
    ],
)
def test_an_output_naming_an_input_is_refused(files, call, name, says):
    out = files / "sub" / ".." / name
    (files / "sub").mkdir()
    with pytest.raises(ValueError, match=f"^-o {out} {says}"):
        calls(out)[call](files)
    assert (files / name).read_bytes() == b"input " + name.encode()


@pytest.mark.parametrize("call", ["reconstruct IMAGE", "inpaint IMAGE", "attention", "predict"])
@pytest.mark.parametrize("name", ["metrics.json", "checkpoint.safetensors", "config.json", "new.json"])
def test_an_output_over_a_run_folders_files_is_refused(files, call, name):
    out = files / "run" / name
    with pytest.raises(ValueError, match=f"^-o {out} would replace a file of the run in {files / 'run'}"):
        calls(out)[call](files)
    assert not (files / "run" / "new.json").exists()
    assert (files / "run" / "metrics.json").read_text() == "{}"


def test_attention_weights_out_is_checked_too(files):
    for weights in (files / "seven.png", files / "run" / "checkpoint.safetensors"):
        with pytest.raises(ValueError, match=f"^--weights-out {weights} "):
            calls(files / "a.png", weights)["attention"](files)


def test_a_hard_link_to_the_input_is_refused(files):
    (files / "link.png").hardlink_to(files / "seven.png")
    with pytest.raises(ValueError, match="is the input file; predict never"):
        predict(files / "no-run", files / "seven.png", output=files / "link.png")


def test_a_picture_or_a_new_name_in_a_run_folder_passes(files):
    check_output_is_not_run_file(files / "run" / "recon.png")
    check_output_is_not_run_file(files / "other.json")  # no config.json beside it
    check_outputs({"-o": files / "out.png", "--weights-out": None}, [("INPUT", files / "seven.png")], "attention")


def test_embed_refuses_its_data_array_and_a_run_folder(files):
    data = files / "arr.npy"
    with pytest.raises(ValueError, match=f"^-o {data} is the --data file; embed never modifies its input"):
        check_output(data, data=data)
    embedding = Embedding.of(np.zeros((2, 3)), [f"{data}[0]", f"{data}[1]"], None)
    with pytest.raises(ValueError, match=f"^-o {data} is the --data file; embed never modifies its input"):
        write_embedding(embedding, data)
    assert data.read_bytes() == b"input arr.npy"
    (files / "run" / "feats.index.csv").write_text("x")
    write_embedding(embedding, files / "feats.npy")  # a new name passes
    assert np.load(files / "feats.npy").shape == (2, 3)
