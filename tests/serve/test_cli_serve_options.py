"""``masklab serve`` options refused before any run is loaded, naming the option; a file given as a run."""

import pytest

import masklab.serve.runs as serve_runs
from masklab.cli import main


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "0", "-3"])
def test_a_max_upload_that_is_not_a_positive_finite_number_is_refused_first(tmp_path, monkeypatch, capsys, value):
    monkeypatch.setattr(serve_runs, "load_runs", lambda *a, **k: pytest.fail("loaded the runs first"))
    assert main(["serve", str(tmp_path), f"--max-upload-mb={value}", "--port", "8123"]) == 2
    err = capsys.readouterr().err
    assert "--max-upload-mb" in err and "Traceback" not in err


def test_a_file_given_as_a_run_is_not_a_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(serve_runs.RunLoadError, match=r"notes\.txt: not a directory"):
        serve_runs.load_runs([tmp_path / "notes.txt"])
    with pytest.raises(serve_runs.RunLoadError, match="gone: no such directory"):
        serve_runs.load_runs([tmp_path / "gone"])
