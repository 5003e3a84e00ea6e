"""Every endpoint of ``masklab serve`` through FastAPI's TestClient: the happy path against the library
function it wraps (same numbers), and bad input -> a 4xx JSON naming the field."""

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.serve.conftest import MAX_UPLOAD, write_table

JSON_ERROR = {"error", "field"}


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(data_url: str) -> np.ndarray:
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))), dtype=np.float64) / 255.0


def assert_error(response, status: int, field: str, *words: str):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= JSON_ERROR and body["field"] == field, body
    assert "Traceback" not in response.text
    for word in words:
        assert word in body["error"], body


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


# -------------------------------------------------------------------------------------------- service
def test_health_and_runs(client):
    assert client.get("/health").json() == {"status": "ok", "runs": 4}
    runs = {r["name"]: r for r in client.get("/api/runs").json()}
    assert {n: r["kind"] for n, r in runs.items()} == {"mae": "mae", "mlm": "mlm", "clm": "clm", "table": "table"}
    assert runs["mae"]["details"]["grid"] == [4, 4] and runs["mae"]["details"]["examples"] == 12
    assert runs["table"]["details"]["columns"] == ["a", "b", "city"] and runs["table"]["details"]["exclude"] == ["id"]


def test_page_and_static_files_are_served_without_a_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("app.js", "series.js", "segment.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200, name
        assert "http://" not in asset.text and "https://" not in asset.text, name  # works offline
        assert f'src="/static/{name}"' in page.text or name == "style.css", name
    assert "https://" not in page.text and "http://" not in page.text
    assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for task in ("reconstruct", "rollout", "fill", "attention", "generate", "impute", "score", "series/reconstruct",
                 "series/forecast", "series/anomalies", "series/examples/{index}", "segment/mask", "segment/edit",
                 "segment/examples/{index}"):  # fmt: skip
        assert f"/api/runs/{{name}}/{task}" in paths, task
    assert "/health" in paths and "/api/runs/{name}/examples/{index}" in paths


def test_unknown_run_and_wrong_kind(client):
    assert_error(client.post("/api/runs/nope/fill", json={"text": "a [MASK]"}), 404, "run", "nope")
    assert_error(client.post("/api/runs/table/fill", json={"text": "a [MASK]"}), 400, "run", "table run")


def test_a_bug_is_a_json_500_without_traceback(client, monkeypatch):
    import masklab.serve.text as text

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(text, "fill", broken)
    response = client.post("/api/runs/mlm/fill", json={"text": "the [MASK]"})
    assert response.status_code == 500 and "secret" not in response.text and "Traceback" not in response.text
    assert response.json()["error"].startswith("internal error")


# ------------------------------------------------------------------------------------------------ mae
def test_reconstruct_painted_mask_matches_the_library(client, by_kind):
    from masklab.eval.reconstruction import reconstruction_views

    run = by_kind["mae"]
    painted = "1100110000000011"
    body = client.post("/api/runs/mae/reconstruct", data={"example": 3, "masking": "paint", "masked": painted}).json()
    assert body["masked"] == painted and body["hidden_fraction"] == pytest.approx(6 / 16)
    masked = torch.tensor([[c == "1" for c in painted]])
    views = reconstruction_views(run.model, run.examples[3:4], masked)
    for key, expected in (("masked_input", views.masked_input), ("reconstruction", views.reconstruction),
                          ("pasted", views.pasted), ("original", run.examples[3:4])):  # fmt: skip
        np.testing.assert_allclose(decode_png(body[key]), expected[0, 0].numpy(), atol=0.5 / 255 + 1e-6, err_msg=key)
    assert body["psnr_hidden"] == pytest.approx(views.psnr[0])


@pytest.mark.parametrize("masking", ["random", "block"])
def test_reconstruct_drawn_masks_are_seeded(client, masking):
    form = {"example": 0, "masking": masking, "ratio": 0.5, "seed": 7}
    first, second = (client.post("/api/runs/mae/reconstruct", data=form).json() for _ in range(2))
    assert first["masked"] == second["masked"] and first["masked"].count("1") == 8
    other = client.post("/api/runs/mae/reconstruct", data={**form, "seed": 8}).json()
    assert other["masked"].count("1") == 8


def test_reconstruct_an_uploaded_colour_image_for_a_gray_model(client):
    rng = np.random.default_rng(0)
    photo = png_bytes(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    response = client.post("/api/runs/mae/reconstruct", files={"image": ("p.png", photo, "image/png")},
                           data={"masking": "random"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert decode_png(response.json()["original"]).shape == (16, 16)  # cover-resized, centre-cropped, luma


def test_reconstruct_bad_input(client):
    url = "/api/runs/mae/reconstruct"
    image = png_bytes(np.zeros((16, 16), dtype=np.uint8))
    assert_error(client.post(url, files={"image": ("a.txt", b"hello", "text/plain")}), 415, "image", "text/plain")
    assert_error(client.post(url, files={"image": ("a.png", b"not a png", "image/png")}), 415, "image", "PIL")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert_error(client.post(url, files={"image": ("a.svg", svg, "image/svg+xml")}), 415, "image", "raster")
    huge = client.post(url, files={"image": ("big.png", b"\0" * (MAX_UPLOAD + 1), "image/png")})
    assert_error(huge, 413, "body", "limit")
    assert_error(client.post(url, data={"masking": "random"}), 400, "image", "either")
    both = client.post(url, files={"image": ("a.png", image, "image/png")}, data={"example": 0})
    assert_error(both, 400, "image", "either")
    assert_error(client.post(url, data={"example": 99}), 400, "example", "out of range")
    assert_error(client.post(url, data={"example": 0, "masked": "101"}), 400, "masked", "16 characters")
    assert_error(client.post(url, data={"example": 0, "masked": "x" * 16}), 400, "masked")
    assert_error(client.post(url, data={"example": 0, "masked": "1" * 16}), 400, "masked", "every patch")
    assert_error(client.post(url, data={"example": 0, "masked": "0" * 16}), 400, "masked", "no patch")
    assert_error(client.post(url, data={"example": 0}), 400, "masked", "paint")
    assert_error(client.post(url, data={"example": 0, "masking": "random", "ratio": 1.0}), 400, "ratio")
    assert_error(client.post(url, data={"example": 0, "masking": "spiral"}), 400, "masking", "paint")
    assert_error(client.post(url, data={"example": "zero"}), 422, "example")


def test_rollout_matches_the_library(client, by_kind):
    from masklab.recipes.attention_maps import cls_row, image_attention_weights

    run = by_kind["mae"]
    body = client.post("/api/runs/mae/rollout", data={"example": 2}).json()
    row = cls_row(image_attention_weights(run.model, run.examples[2:3]), None, None)
    expected = (row - row.min()) / (row.max() - row.min())
    assert body["grid"] == [4, 4]
    np.testing.assert_allclose(body["weights"], expected.numpy(), atol=1e-4)
    assert_error(client.post("/api/runs/mae/rollout", files={"image": ("a.gif", b"GIF89a", "image/gif")}), 415, "image")


def test_examples_are_pngs(client, by_kind):
    response = client.get("/api/runs/mae/examples/5")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.float64) / 255
    np.testing.assert_allclose(pixels, by_kind["mae"].examples[5, 0].numpy(), atol=0.5 / 255 + 1e-6)
    assert_error(client.get("/api/runs/mae/examples/12"), 404, "index")


# ----------------------------------------------------------------------------------------------- text
def test_fill_matches_the_library(client, by_kind):
    from masklab.recipes.mlm_tasks import fill_mask

    run = by_kind["mlm"]
    text = "the [MASK] sat on the [MASK] ."
    body = client.post("/api/runs/mlm/fill", json={"text": text, "top_k": 3}).json()
    expected = fill_mask(run.model, run.tokenizer, text, 3)
    assert [m["position"] for m in body["masks"]] == [e["position"] for e in expected]
    for got, want in zip(body["masks"], expected, strict=True):
        assert [c["token"] for c in got["candidates"]] == [t for t, _ in want["candidates"]]
        np.testing.assert_allclose([c["probability"] for c in got["candidates"]], [p for _, p in want["candidates"]])


def test_fill_bad_input(client):
    url = "/api/runs/mlm/fill"
    assert_error(client.post(url, json={"text": "the cat sat"}), 400, "text", "[MASK]")
    assert_error(client.post(url, json={"text": "a [MASK] " + "cat " * 600}), 400, "text", "at most")
    assert_error(client.post(url, json={"text": "[MASK]" * 1000}), 422, "text")
    assert_error(client.post(url, json={"text": "a [MASK]", "top_k": 0}), 422, "top_k")
    assert_error(client.post(url, json={}), 422, "text")
    broken = client.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(broken, 422, "body", "JSON")


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_text_attention(client, by_kind, kind):
    from masklab.recipes.attention_maps import text_attention_weights, text_limits

    run = by_kind[kind]
    body = client.post(f"/api/runs/{kind}/attention", json={"text": "the cat sat on the mat"}).json()
    limit = min(48, text_limits(run.model, kind)[0])  # the tiny clm reads 16 characters
    weights, tokens, _ = text_attention_weights(run.model, run.tokenizer, kind, "the cat sat on the mat", limit)
    assert body["tokens"] == tokens and body["layers"] == len(weights) and body["causal"] == (kind == "clm")
    got = np.asarray(body["weights"])  # (layers, H, T, T)
    np.testing.assert_allclose(got, torch.stack([w[0] for w in weights]).numpy(), atol=1e-4)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-3)
    if kind == "clm":
        assert np.all(np.triu(got, k=1) == 0)
    assert_error(client.post(f"/api/runs/{kind}/attention", json={"text": "  "}), 400, "text", "empty")


def test_generate_streams_the_library_s_tokens(client, by_kind):
    from masklab.models.clm.generation import generate

    run = by_kind["clm"]
    response = client.post("/api/runs/clm/generate", json={"prompt": "the cat", "max_tokens": 12, "temperature": 0})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1][0] == "done" and all(e == "token" for e, _ in events[:-1])
    ids = run.tokenizer.encode("the cat", add_special_tokens=False).ids
    expected = generate(run.model, [ids], max_new_tokens=12, temperature=0.0)[0]
    assert events[-1][1] == {"text": run.tokenizer.decode(expected), "tokens": len(expected)}
    streamed = ""
    for _, data in events[:-1]:
        streamed = streamed + data["delta"] if "delta" in data else data["text"]
    assert streamed == events[-1][1]["text"] and len(events) > 2


def test_generate_bad_input(client):
    url = "/api/runs/clm/generate"
    assert_error(client.post(url, json={"prompt": ""}), 400, "prompt", "empty")
    assert_error(client.post(url, json={"prompt": " \n "}), 400, "prompt", "empty")
    assert_error(client.post(url, json={"prompt": "a", "max_tokens": 0}), 422, "max_tokens")
    assert_error(client.post(url, json={"prompt": "a", "temperature": -1}), 422, "temperature")


# --------------------------------------------------------------------------------------------- tables
@pytest.fixture(scope="module")
def holes(tmp_path_factory):
    """A test CSV (the run's columns plus id) with three missing cells."""
    path = write_table(tmp_path_factory.mktemp("upload") / "t.csv", rows=25, seed=1)
    lines = path.read_text().splitlines()
    for line_no, column in ((2, 1), (5, 2), (9, 3)):
        cells = lines[line_no].split(",")
        cells[column] = ""
        lines[line_no] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def test_impute_changes_only_missing_cells(client, holes):
    response = client.post("/api/runs/table/impute", files={"file": ("t.csv", holes, "text/csv")})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert json.loads(response.headers["x-masklab-filled"]) == {"a": 1, "b": 1, "city": 1}
    before = [line.split(",") for line in holes.decode().splitlines()]
    after = [line.split(",") for line in response.text.splitlines()]
    changed = {(i, j) for i in range(len(before)) for j in range(4) if before[i][j] != after[i][j]}
    assert changed == {(2, 1), (5, 2), (9, 3)} and after[9][3] in ("Oslo", "Lima")


def test_score_matches_the_detector(client, by_kind, holes):
    body = client.post("/api/runs/table/score", files={"file": ("t.csv", holes, "text/csv")}).json()
    frame = pd.read_csv(io.BytesIO(holes)).drop(columns="id")
    expected = by_kind["table"].detector.anomaly_score(frame)
    assert body["columns"] == ["a", "b", "city"] and body["total_rows"] == 25
    got = {r["row"]: r["score"] for r in body["rows"]}
    np.testing.assert_allclose([got[i + 1] for i in range(25)], expected, rtol=1e-5)
    assert [r["score"] for r in body["rows"]] == sorted(got.values(), reverse=True)
    missing = next(r for r in body["rows"] if r["row"] == 2)
    assert missing["errors"][0] is None and missing["cells"][0] == ""
    tops = [(c["row"], c["column"], c["error"]) for c in body["top_cells"]]
    assert len(tops) == 10 and [e for *_, e in tops] == sorted((e for *_, e in tops), reverse=True)


def test_table_bad_input(client, holes):
    for task in ("impute", "score"):
        url = f"/api/runs/table/{task}"
        unknown = b"a,b,city,zzz\n1,2,Oslo,3\n"
        assert_error(client.post(url, files={"file": ("u.csv", unknown, "text/csv")}), 400, "file", "zzz")
        assert_error(client.post(url, files={"file": ("u.csv", b"a,b\n1,2\n", "text/csv")}), 400, "file", "city")
        assert_error(client.post(url, files={"file": ("u.csv", b"", "text/csv")}), 400, "file", "empty")
        assert_error(client.post(url, files={"file": ("u.csv", b"\xff\xfe\x00", "text/csv")}), 415, "file", "UTF-8")
        assert_error(client.post(url, files={"file": ("u.csv", b"a,a\n1,2\n", "text/csv")}), 400, "file", "duplicate")
        big = holes * (MAX_UPLOAD // len(holes) + 1)
        assert_error(client.post(url, files={"file": ("u.csv", big, "text/csv")}), 413, "body")
        bad_exclude = client.post(url, files={"file": ("t.csv", holes, "text/csv")}, data={"exclude": "nope"})
        assert_error(bad_exclude, 400, "exclude", "nope")
        assert_error(client.post(url), 422, "file")
        assert "/tmp" not in client.post(url, files={"file": ("u.csv", unknown, "text/csv")}).text


def test_a_body_without_content_length_is_cut_at_the_limit(client):
    chunks = (b" " * 10_000 for _ in range(MAX_UPLOAD // 10_000 + 2))  # chunked: no Content-Length to check
    response = client.post("/api/runs/mlm/fill", content=chunks, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "body", "limit")


def test_concurrent_requests_get_their_own_answers(client):
    """Threads hitting two models at once: every answer equals the one the same request got alone."""
    from concurrent.futures import ThreadPoolExecutor

    requests = [("/api/runs/mlm/fill", {"json": {"text": f"the [MASK] {w} on the mat"}}) for w in ("sat", "ran")]
    requests += [("/api/runs/mae/reconstruct", {"data": {"example": i, "masking": "random", "seed": i}})
                 for i in range(2)]  # fmt: skip
    alone = [client.post(url, **options).json() for url, options in requests]
    order = [i % len(requests) for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: client.post(requests[i][0], **requests[i][1]).json(), order))
    assert all(answer == alone[i] for i, answer in zip(order, answers, strict=True))


def test_a_client_that_leaves_mid_stream_does_not_block_the_model(client, by_kind):
    # (Whether the generation stops at once depends on when the test transport reports the disconnect, so
    # this checks what must hold either way: the model's lock is released and the next request is answered.)
    with client.stream("POST", "/api/runs/clm/generate", json={"prompt": "the cat", "max_tokens": 300}) as stream:
        assert next(stream.iter_lines()) == "event: token"
    response = client.post("/api/runs/clm/generate", json={"prompt": "the dog", "max_tokens": 3, "temperature": 0})
    assert sse_events(response.text)[-1] == ("done", {"text": sse_events(response.text)[-1][1]["text"], "tokens": 3})
    assert not by_kind["clm"].lock.locked()
