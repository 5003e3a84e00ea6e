"""``masklab serve`` start-up: runs load once or are refused with the reason, and a non-local bind warns."""

import json

import pytest

import masklab.serve.runs as serve_runs
from masklab.cli import main


@pytest.fixture
def no_server(monkeypatch):
    """Record uvicorn.run's arguments instead of serving."""
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append((app, kwargs)))
    return calls


def test_serve_loads_the_runs_and_binds_localhost(run_dirs, no_server, capsys):
    assert main(["serve", str(run_dirs / "mlm"), str(run_dirs / "table"), "--port", "8123"]) == 0
    ((_, kwargs),) = no_server
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8123
    out, err = capsys.readouterr()
    assert "mlm (mlm)" in out and "table (table)" in out and "http://127.0.0.1:8123/" in out
    assert "WARNING" not in err


def test_serve_warns_when_bound_elsewhere(run_dirs, no_server, capsys):
    assert main(["serve", str(run_dirs / "mlm"), "--host", "0.0.0.0"]) == 0
    assert "WARNING: binding 0.0.0.0" in capsys.readouterr().err


def test_runs_that_fail_to_load_are_reported_at_start_up(run_dirs, tmp_path, no_server, capsys):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"kind": "series-classifier"}))
    code = main(["serve", str(run_dirs / "mlm"), str(tmp_path / "missing"), str(tmp_path / "odd")])
    err = capsys.readouterr().err
    assert code == 2 and not no_server and "Traceback" not in err
    assert f"cannot serve {tmp_path / 'missing'}: no such directory" in err
    assert f"cannot serve {tmp_path / 'odd'}: a 'series-classifier' run; masklab serve shows mae (with its " in err
    assert "series, and segment (a head folder) runs" in err


def test_serve_loads_series_runs_and_heads_with_their_notes(series_dirs, segment_dirs, no_server, capsys):
    runs = [series_dirs / "series", segment_dirs / "seg", segment_dirs / "unfinished"]
    assert main(["serve", *map(str, runs)]) == 0
    out = capsys.readouterr().out
    assert "series (series)" in out and "seg (mae)" in out and "unfinished (segment)" in out
    assert "note: the examples are series this run was trained on" in out
    assert "note: segmentation: the head in" in out and "stopped at step 2 of 50 (interrupted)" in out


def test_help_lists_the_kinds(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "mae (plus a segmentation panel when RUN/segment holds a head" in help_text
    assert "mlm, clm, table, series (masklab pretrain series), or a segmentation head folder" in help_text


def test_run_names_are_unique_and_url_safe(tmp_path):
    paths = [tmp_path / "a" / "my run", tmp_path / "b" / "my run", tmp_path / "x?y"]
    assert serve_runs.run_names(paths) == ["my-run", "my-run-2", "x-y"]


def test_bad_port_is_a_usage_error(run_dirs, no_server, capsys):
    assert main(["serve", str(run_dirs / "mlm"), "--port", "0"]) == 2
    assert "--port" in capsys.readouterr().err


def test_a_port_in_use_is_refused_before_any_run_is_loaded(tmp_path, no_server, capsys, monkeypatch):
    # uvicorn failed after every run had loaded, with "ERROR: [Errno 98] ..." and exit 3, once the page's
    # "open http://..." line had been printed.
    import socket

    monkeypatch.setattr(serve_runs, "load_runs", lambda *a, **k: pytest.fail("loaded the runs first"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"masklab: error: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use)" in err
