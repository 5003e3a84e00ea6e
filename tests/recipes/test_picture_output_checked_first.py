"""``reconstruct``, ``inpaint``, ``attention`` and ``masks`` check ``-o`` before any work: a path under a regular
file, a folder, or a suffix no writer knows is one line naming ``-o`` (exit 2). Before, each loaded the run and
drew the picture first, then failed ("afile: File exists"), or wrote PNG bytes under ``m.pngx``. The run given
here does not exist, so an error about it means the output was checked too late."""

import pytest

from masklab.cli import main

COMMANDS = {
    "reconstruct": ["reconstruct", "nope"],
    "inpaint": ["inpaint", "nope", "img.png", "--mask-image", "m.png"],
    "attention": ["attention", "nope", "hello"],
    "masks": ["masks", "--run", "nope"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("output", "message"), [
    ("afile/x.png", "cannot write a file in"),
    ("m.pngx", "not .pngx"),
    ("folder", "is a folder"),
])  # fmt: skip
def test_output_is_refused_before_the_run_is_read(command, output, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a regular file")
    (tmp_path / "folder").mkdir()
    assert main([*COMMANDS[command], "-o", output]) == 2
    err = capsys.readouterr().err
    assert f"-o {output}" in err and message in err and "nope" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "folder"]  # nothing written


def test_the_error_names_the_formats(tmp_path, capsys):
    assert main(["reconstruct", "nope", "-o", str(tmp_path / "m.pngx")]) == 2
    assert ".png, .jpg" in capsys.readouterr().err
    assert main(["attention", "nope", "hi", "-o", str(tmp_path / "m.pngx")]) == 2
    assert ".svg" in capsys.readouterr().err


def test_attention_checks_weights_out_first(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a regular file")
    assert main(["attention", "nope", "hi", "-o", "a.png", "--weights-out", "afile/w.safetensors"]) == 2
    err = capsys.readouterr().err
    assert "--weights-out afile/w.safetensors" in err and "nope" not in err
