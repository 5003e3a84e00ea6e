"""The series endpoints of ``masklab serve`` through FastAPI's TestClient: each answer equals the recipe function
called on the same series (``masklab.recipes.series``), and bad input is a 4xx JSON naming the field."""

import base64
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from masklab.data.series import load_series
from tests.serve.conftest import MAX_UPLOAD
from tests.serve.test_api import assert_error

NPZ = "application/octet-stream"


def upload(series_dirs, name="s.npz"):
    return {"file": (name, (series_dirs / "s.npz").read_bytes(), NPZ)}


def values(array):
    """(T, C) as the API sends it: NaN -> None."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(array, dtype=np.float64)]


def assert_close(got, expected, atol=1e-5):
    got = np.array([[np.nan if v is None else v for v in row] for row in got], dtype=np.float64)
    np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), atol=atol, equal_nan=True)


def png_shape(data_url):
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload)))).shape


def test_series_runs_are_listed_with_their_examples(series_client):
    runs = {r["name"]: r for r in series_client.get("/api/runs").json()}
    assert {n: r["kind"] for n, r in runs.items()} == {"series": "series", "vowels": "series"}
    own = runs["series"]["details"]
    assert own["channels"] == 2 and own["max_steps"] == 4 + 63 * 4 and len(own["examples"]) == 10
    assert own["examples"][0] == {"name": "s.npz[0]", "length": own["examples"][0]["length"]}
    assert any("trained on" in n and "no held-out split" in n for n in runs["series"]["notes"])
    vowels = runs["vowels"]["details"]
    assert vowels["channels"] == 12 and len(vowels["examples"]) == 12 and not runs["vowels"]["notes"]
    # the built-in's test split: JapaneseVowels has 270 training series, listed first
    assert all(int(e["name"].split("[")[1].rstrip("]")) >= 270 for e in vowels["examples"])


def test_series_example_endpoint(series_client, series_runs):
    body = series_client.get("/api/runs/vowels/series/examples/4").json()
    run = series_runs["vowels"]
    assert body["name"] == run.examples.names()[4] and body["count"] == 12
    assert body["values"] == values(run.examples.series[4])
    assert_error(series_client.get("/api/runs/vowels/series/examples/12"), 404, "index", "out of range")


def test_forecast_equals_the_recipe(series_client, series_runs, series_dirs):
    from masklab.recipes.series import forecast

    run = series_runs["series"]
    response = series_client.post("/api/runs/series/series/forecast", files=upload(series_dirs),
                                  data={"index": 3, "horizon": 7, "channel": 1})  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    data = load_series(str(series_dirs / "s.npz"))
    expected = forecast(run.model, data.subset([3]), 7)[0]  # (7, 2)
    assert body["name"] == "s.npz[3]" and body["count"] == 10 and body["horizon"] == 7 and body["channel"] == 1
    assert body["values"] == values(data.series[3]) and body["length"] == len(data.series[3])
    assert_close(body["forecast"], expected)
    assert png_shape(body["image"])[0] > 50  # the history, the forecast, the horizon shaded
    example = series_client.post("/api/runs/vowels/series/forecast", data={"example": 2, "horizon": 4}).json()
    vowels = series_runs["vowels"]
    assert_close(example["forecast"], forecast(vowels.model, vowels.examples.subset([2]), 4)[0])


def test_anomalies_equal_the_recipe(series_client, series_runs, series_dirs):
    from masklab.recipes.series import anomaly_scores

    run = series_runs["series"]
    body = series_client.post("/api/runs/series/series/anomalies", files=upload(series_dirs)).json()
    data = load_series(str(series_dirs / "s.npz")).subset([0])  # series 0 has missing values
    per_series, per_step = anomaly_scores(run.model, data)
    assert body["values"] == values(data.series[0]) and None in [v for row in body["values"] for v in row]
    assert body["score"] == pytest.approx(float(per_series[0]), rel=1e-5)
    np.testing.assert_allclose(np.array(body["per_step"], dtype=np.float64), per_step[0], rtol=1e-5, equal_nan=True)
    top = body["top_steps"]
    assert len(top) == 10 and per_step[0][top[0]] == np.nanmax(per_step[0])


def test_reconstruct_equals_show_reconstructions(series_client, series_runs, series_dirs, monkeypatch, tmp_path):
    import masklab.viz.series as viz
    from masklab.recipes.series import show_reconstructions

    run = series_runs["series"]
    body = series_client.post("/api/runs/series/series/reconstruct", files=upload(series_dirs),
                              data={"index": 5, "seed": 3}).json()  # fmt: skip
    drawn = {}
    with monkeypatch.context() as patch:  # what the recipe draws: the series, its hidden steps, the reconstruction
        patch.setattr(viz, "plot_reconstructions", lambda s, h, r, path, **kw: drawn.update(s=s, h=h, r=r) or path)
        show_reconstructions(run.model, load_series(str(series_dirs / "s.npz")).subset([5]), tmp_path / "r.png",
                             count=1, seed=3)  # fmt: skip
    hidden = np.array([[c == "1" for c in channel] for channel in body["hidden"]]).T  # (T, C)
    np.testing.assert_array_equal(hidden, drawn["h"][0])
    assert_close(body["reconstruction"], drawn["r"][0])
    assert body["hidden_fraction"] == pytest.approx(hidden.mean()) and 0 < hidden.mean() < 1
    x = drawn["s"][0]
    scored = hidden & ~np.isnan(x)
    assert body["mse_hidden"] == pytest.approx(float(np.mean((drawn["r"][0][scored] - x[scored]) ** 2)), rel=1e-5)
    assert png_shape(body["image"])[1] > 300
    again = series_client.post("/api/runs/series/series/reconstruct", files=upload(series_dirs),
                               data={"index": 5, "seed": 3}).json()  # fmt: skip
    assert again["hidden"] == body["hidden"]
    tail = series_client.post("/api/runs/series/series/reconstruct", data={"example": 0, "masking": "tail"}).json()
    for channel in tail["hidden"]:  # the last patches, and only they
        assert channel.endswith("1") and "10" not in channel


def test_a_long_format_csv_upload(series_client, series_runs):
    from masklab.recipes.series import forecast

    rows = [{"id": f"s{k}", "time": t, "a": np.sin(t / 3 + k), "b": np.cos(t / 5)} for k in range(3) for t in range(24)]
    text = pd.DataFrame(rows).to_csv(index=False).encode()
    body = series_client.post("/api/runs/series/series/forecast", files={"file": ("long.csv", text, "text/csv")},
                              data={"index": 1, "horizon": 3}).json()  # fmt: skip
    assert body["name"] == "s1" and body["count"] == 3 and body["length"] == 24
    frame = pd.DataFrame(rows)
    one = frame[frame.id == "s1"][["a", "b"]].to_numpy(np.float32)
    from masklab.data.series import SeriesSet

    assert_close(body["forecast"], forecast(series_runs["series"].model, SeriesSet([one], "x"), 3)[0])


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_series_bad_input(series_client, series_dirs):
    url = "/api/runs/series/series/forecast"
    assert_error(series_client.post("/api/runs/vowels/series/forecast", files=upload(series_dirs)), 400, "file",
                 "2 channel(s)", "12")  # fmt: skip
    assert_error(series_client.post(url, files={"file": ("a.txt", b"1,2", "text/plain")}), 415, "file", "not a series")
    assert_error(series_client.post(url, files={"file": ("a.npy", b"hello", NPZ)}), 415, "file", "not a valid .npy")
    assert_error(series_client.post(url, files={"file": ("a.npz", b"hello", NPZ)}), 415, "file", "not a valid .npz")
    assert_error(series_client.post(url, files={"file": ("a.npz", b"", NPZ)}), 400, "file", "empty")
    assert_error(series_client.post(url, files={"file": ("a.csv", b"x,y\n1,2\n", "text/csv")}), 400, "file", "'id'")
    buffer = io.BytesIO()
    np.save(buffer, np.array([np.zeros(3), np.zeros(4)], dtype=object), allow_pickle=True)
    assert_error(series_client.post(url, files={"file": ("o.npy", buffer.getvalue(), NPZ)}), 400, "file", "pickle")
    bomb = _npz_bytes(values=np.zeros((1, 5_000_000), dtype=np.float32))
    assert len(bomb) < MAX_UPLOAD
    assert_error(series_client.post(url, files={"file": ("z.npz", bomb, NPZ)}), 413, "file", "more than")
    assert zipfile.is_zipfile(io.BytesIO(bomb))
    huge = series_client.post(url, files={"file": ("big.npz", b"\0" * (MAX_UPLOAD + 1), NPZ)})
    assert_error(huge, 413, "body", "limit")
    long = _npz_bytes(values=np.zeros((1, 300, 2), dtype=np.float32))
    assert_error(series_client.post(url, files={"file": ("l.npz", long, NPZ)}), 400, "file", "at most 256")
    assert_error(series_client.post(url, data={"example": 0, "horizon": 0}), 400, "horizon", ">= 1")
    assert_error(series_client.post(url, data={"example": 0, "horizon": -3}), 400, "horizon", ">= 1")
    assert_error(series_client.post(url, data={"example": 0, "horizon": 250}), 400, "horizon", "at most")
    assert_error(series_client.post(url, data={"example": 0, "horizon": "soon"}), 422, "horizon")
    assert_error(series_client.post(url, data={"example": 0, "channel": 2}), 400, "channel", "out of range")
    assert_error(series_client.post(url, files=upload(series_dirs), data={"index": 10}), 400, "index", "0 to 9")
    assert_error(series_client.post(url, files=upload(series_dirs), data={"example": 0}), 400, "file", "either")
    assert_error(series_client.post(url, data={"horizon": 3}), 400, "file", "either")
    assert_error(series_client.post(url, data={"example": 10}), 400, "example", "out of range")
    recon = "/api/runs/series/series/reconstruct"
    assert_error(series_client.post(recon, data={"example": 0, "masking": "spiral"}), 400, "masking", "random")
    assert_error(series_client.post(recon, data={"example": 0, "seed": -1}), 422, "seed")
    assert_error(series_client.post("/api/runs/series/fill", json={"text": "a [MASK]"}), 400, "run", "series run")
    assert_error(series_client.post("/api/runs/nope/series/anomalies", data={"example": 0}), 404, "run", "nope")
