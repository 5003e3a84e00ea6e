"""What a served run needs is read once, when it is loaded: a sidecar broken later, a run retrained in place or
a run folder deleted while the server runs changes none of its answers (they gave 500s and wrong errors)."""

import json
import shutil

import pytest

from tests.serve.conftest import make_client
from tests.serve.test_api_series import upload

ROWS = b"id,a,b,city\n1,0.5,1.0,Oslo\n2,-0.2,-0.4,Lima\n3,,0.1,Oslo\n"


@pytest.fixture
def table_copy(run_dirs, tmp_path):
    from masklab.serve.runs import load_runs

    path = shutil.copytree(run_dirs / "table", tmp_path / "table")
    (run,) = load_runs([path], "cpu")
    return path, make_client([run])


def test_broken_sidecars_written_later_change_nothing(table_copy):
    path, client = table_copy
    before = client.get("/api/runs").json()
    score = client.post("/api/runs/table/score", files={"file": ("t.csv", ROWS, "text/csv")}).json()
    for name in ("table.json", "arguments.json"):
        if (path / name).exists():
            (path / name).write_text("{not json")
    assert client.get("/api/runs").json() == before
    again = client.post("/api/runs/table/score", files={"file": ("t.csv", ROWS, "text/csv")})
    assert again.status_code == 200 and again.json() == score


def test_a_table_run_retrained_in_place_is_served_as_loaded(table_copy):
    path, client = table_copy
    config = json.loads((path / "config.json").read_text())
    for column in config["model"]["schema"]["columns"]:
        column["name"] = column["name"] + "_new"
    (path / "config.json").write_text(json.dumps(config))
    (path / "table.json").write_text(json.dumps({"exclude": ["a_new"], "label": "city_new"}))
    for url in ("/api/runs/table/score", "/api/runs/table/impute"):
        response = client.post(url, files={"file": ("t.csv", ROWS, "text/csv")})
        assert response.status_code == 200, (url, response.text)
    assert client.get("/api/runs").json()[0]["details"]["exclude"] == ["id"]


def test_a_series_run_deleted_while_served_keeps_its_details_and_answers(series_dirs, tmp_path):
    from masklab.serve.runs import load_runs

    path = shutil.copytree(series_dirs / "series", tmp_path / "series")
    (run,) = load_runs([path], "cpu")
    client = make_client([run])
    before = client.get("/api/runs").json()
    forecast = client.post("/api/runs/series/series/forecast", files=upload(series_dirs)).json()
    (path / "arguments.json").write_text(json.dumps({"recipe": "pretrain_series", "arguments": {"horizon": 3}}))
    assert client.get("/api/runs").json() == before
    shutil.rmtree(path)
    assert client.get("/api/runs").json() == before
    again = client.post("/api/runs/series/series/forecast", files=upload(series_dirs))
    assert again.status_code == 200 and again.json() == forecast
