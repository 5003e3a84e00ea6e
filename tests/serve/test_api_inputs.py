"""Inputs the review found mishandled: each answer names the field at fault and says what was expected, and
nothing the API accepts fails inside the model."""

import io

import numpy as np
from PIL import Image

from tests.serve.test_api import assert_error, sse_events
from tests.serve.test_api_series import upload


def big_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")  # a few kB: the size is in the header
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- generation
def test_any_accepted_temperature_generates(client):
    for temperature in (1e-300, 1e-45, 1e-320):
        response = client.post("/api/runs/clm/generate", json={"prompt": "the cat", "max_tokens": 3,
                                                                "temperature": temperature})  # fmt: skip
        assert [event for event, _ in sse_events(response.text)] == ["token"] * 3 + ["done"], response.text


def test_a_temperature_that_is_not_a_finite_number_says_so(client):
    for value in ("NaN", "Infinity", "-inf"):
        response = client.post("/api/runs/clm/generate", json={"prompt": "the cat", "temperature": value})
        assert_error(response, 422, "temperature", "finite number")


# -------------------------------------------------------------------------------------------------- images
def test_every_image_endpoint_answers_413_naming_the_pixel_limit(client, segment_client):
    for width, height in ((8000, 6000), (20000, 10000)):  # over serve's limit; over PIL's own bomb limit
        image = {"image": ("big.png", big_png(width, height), "image/png")}
        for url in ("/api/runs/mae/reconstruct", "/api/runs/mae/rollout"):
            response = client.post(url, files=image, data={"masking": "random"})
            assert_error(response, 413, "image", "pixels", "limit")
            assert "bomb" not in response.text.lower()
        response = segment_client.post("/api/runs/seg/segment/mask", files=image)
        assert_error(response, 413, "image", "pixels", "limit")
        assert "bomb" not in response.text.lower()


def test_a_ratio_hiding_every_patch_names_ratio(client):
    response = client.post("/api/runs/mae/reconstruct", data={"example": 0, "masking": "random",
                                                              "ratio": "0.999999999"})  # fmt: skip
    assert_error(response, 400, "ratio", "every patch")


def test_empty_form_fields_are_refused_not_taken_as_defaults(client, series_client, series_dirs, segment_client):
    response = series_client.post("/api/runs/series/series/forecast", files=upload(series_dirs),
                                  data={"horizon": ""})  # fmt: skip
    assert_error(response, 422, "horizon", "empty")
    response = segment_client.post("/api/runs/seg/segment/edit", data={"example": 0, "edit": "blur-background",
                                                                       "radius": ""})  # fmt: skip
    assert_error(response, 422, "radius", "empty")
    response = client.post("/api/runs/mae/reconstruct", data={"example": 0, "masking": "random", "ratio": ""})
    assert_error(response, 422, "ratio", "empty")


# -------------------------------------------------------------------------------------------------- series
def test_a_dollar_in_a_series_name_is_drawn_literally(series_client, series_dirs):
    for url in ("reconstruct", "forecast"):
        response = series_client.post(f"/api/runs/series/series/{url}", files=upload(series_dirs, "a$_$b.npz"))
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "a$_$b.npz[0]"


# -------------------------------------------------------------------------------------------------- tables
def test_excluding_a_feature_names_exclude_and_says_the_model_needs_it(client):
    holes = b"id,a,b,city\n1,0.5,,Oslo\n2,-0.2,-0.4,Lima\n"
    for url in ("/api/runs/table/score", "/api/runs/table/impute"):
        response = client.post(url, files={"file": ("t.csv", holes, "text/csv")}, data={"exclude": "city"})
        assert_error(response, 400, "exclude", "city", "feature")


def test_a_column_with_a_comma_can_be_excluded_with_repeated_fields(client):
    csv = b'id,"note, free text",a,b,city\n1,"x, y",0.5,1.0,Oslo\n2,z,-0.2,-0.4,Lima\n'
    response = client.post("/api/runs/table/score", files={"file": ("t.csv", csv, "text/csv")},
                           data={"exclude": ["id", "note, free text"]})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["columns"] == ["a", "b", "city"]


def test_an_unseen_category_says_what_to_do_on_the_page(client):
    csv = b"id,a,b,city\n1,0.5,1.0,Paris\n"
    for url in ("/api/runs/table/score", "/api/runs/table/impute"):
        response = client.post(url, files={"file": ("t.csv", csv, "text/csv")})
        assert_error(response, 400, "file", "Paris")
        assert "--handle-unknown" not in response.json()["error"], response.json()
        assert "Oslo" in response.json()["error"] or "known" in response.json()["error"]


def test_anomaly_scores_of_series_too_large_for_the_model_are_refused(series_client, tmp_path):
    values = np.ones((1, 30, 2), dtype=np.float32)
    values[0, 4, 0] = 1e19
    np.save(tmp_path / "big.npy", values)
    response = series_client.post("/api/runs/series/series/anomalies",
                                  files={"file": ("big.npy", (tmp_path / "big.npy").read_bytes())})  # fmt: skip
    assert_error(response, 400, "file", "big.npy", "rescale")
