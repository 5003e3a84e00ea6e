"""The segmentation endpoints of ``masklab serve`` through FastAPI's TestClient: the mask equals
``recipes.segment.predict_mask`` on the same image, each edit equals its ``recipes.edit`` function, and bad input
is a 4xx JSON naming the field."""

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from tests.serve.test_api import assert_error, png_bytes

BOX = "0,0,8,8"  # the 2-step head finds subject nearly everywhere: a box leaves patches to fill a removal from


def data_png(data_url) -> np.ndarray:
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))


@pytest.fixture(scope="module")
def photo():
    """A 20x24 RGB image (not the model's 16x16: masks and edits keep the image's own size)."""
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 120, (20, 24, 3), dtype=np.uint8)
    pixels[4:12, 6:14] = 230
    return pixels


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float() / 255.0


def test_heads_are_listed_with_their_notes(segment_client):
    runs = {r["name"]: r for r in segment_client.get("/api/runs").json()}
    assert {n: r["kind"] for n, r in runs.items()} == {"seg": "mae", "segment": "segment", "unfinished": "segment",
                                                       "plain": "mae"}  # fmt: skip
    seg = runs["seg"]["details"]["segmentation"]
    assert seg["classes"] == 2 and seg["examples"] == 3 and seg["remove_subject"] and not seg["notes"]
    assert runs["seg"]["details"]["grid"] == [4, 4]  # the MAE panel stays
    assert runs["plain"]["details"]["segmentation"] is None  # an MAE run without a head: today's panel only
    assert runs["segment"]["details"]["segmentation"]["remove_subject"]  # the head folder's parent is its MAE run
    notes = runs["unfinished"]["notes"]
    assert any("stopped at step 2 of 50" in n for n in notes), notes
    assert any("remove-subject is not offered" in n and "gone" in n for n in notes), notes
    assert runs["unfinished"]["details"]["segmentation"]["notes"] == notes


def test_mask_equals_predict_mask(segment_client, segment_runs, photo, tmp_path):
    from masklab.recipes.segment import overlay, predict_mask, save_side_by_side

    seg = segment_runs["seg"].segment.model
    for box in (None, (2, 3, 15, 12)):
        form = {} if box is None else {"box": ",".join(map(str, box))}
        response = segment_client.post("/api/runs/seg/segment/mask", files={"image": ("p.png", png_bytes(photo),
                                       "image/png")}, data=form)  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        classes = predict_mask(seg, as_tensor(photo), box)
        assert (body["width"], body["height"], body["classes"]) == (24, 20, 2)
        assert body["box"] == (None if box is None else list(box))
        np.testing.assert_array_equal(data_png(body["mask"]), (classes.numpy() > 0).astype(np.uint8) * 255)
        assert body["subject_fraction"] == pytest.approx(float((classes > 0).float().mean()))
        expected = (overlay(as_tensor(photo), classes).permute(1, 2, 0).numpy() * 255).round()
        np.testing.assert_allclose(data_png(body["overlay"]), expected, atol=1)
        side = np.asarray(Image.open(save_side_by_side(tmp_path / "side.png", as_tensor(photo), classes)))
        np.testing.assert_array_equal(data_png(body["side_by_side"]), side)
    folder = segment_client.post("/api/runs/segment/segment/mask", data={"example": 1}).json()
    run = segment_runs["segment"]
    classes = predict_mask(run.segment.model, run.segment.examples[1])
    np.testing.assert_array_equal(data_png(folder["mask"]) > 0, classes.numpy() > 0)


def test_edits_equal_the_recipes(segment_client, segment_runs, photo):
    from masklab.recipes import edit
    from masklab.recipes.segment import predict_mask

    run = segment_runs["seg"]
    subject = predict_mask(run.segment.model, as_tensor(photo), (0, 0, 8, 8)).numpy() > 0
    assert subject.any() and not subject.all()
    background = np.full((30, 40, 3), (0, 0, 255), dtype=np.uint8)
    expected = {
        "remove-background": edit.remove_background(photo, subject),
        "blur-background": edit.blur_background(photo, subject, 2.0),
        "replace-background": edit.replace_background(photo, subject, background),
        "remove-subject": edit.remove_subject(run.model, photo, subject),
    }
    for what, want in expected.items():
        files = {"image": ("p.png", png_bytes(photo), "image/png")}
        if what == "replace-background":
            files["background"] = ("bg.png", png_bytes(background), "image/png")
        response = segment_client.post("/api/runs/seg/segment/edit", files=files,
                                       data={"edit": what, "box": BOX, "radius": 2.0})  # fmt: skip
        assert response.status_code == 200, (what, response.text)
        assert response.headers["content-type"] == "image/png"
        assert response.headers["x-masklab-subject-pixels"] == str(int(subject.sum()))
        assert f'filename="{what}.png"' in response.headers["content-disposition"]
        got = np.asarray(Image.open(io.BytesIO(response.content)))
        np.testing.assert_array_equal(got, want, err_msg=what)
    assert got.shape == (20, 24, 3) and np.array_equal(got[~subject], photo[~subject])  # only the subject changed


def test_examples_and_the_mae_panel_still_work(segment_client, segment_runs):
    response = segment_client.get("/api/runs/seg/segment/examples/2")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.float64) / 255
    np.testing.assert_allclose(pixels, segment_runs["seg"].segment.examples[2].permute(1, 2, 0).numpy(), atol=1e-6)
    assert_error(segment_client.get("/api/runs/seg/segment/examples/3"), 404, "index", "out of range")
    body = segment_client.post("/api/runs/seg/reconstruct", data={"example": 0, "masking": "random"}).json()
    assert body["masked"].count("1") == 12
    plain = segment_client.post("/api/runs/plain/reconstruct", data={"example": 0, "masking": "random"})
    assert plain.status_code == 200


def test_segment_bad_input(segment_client, photo, monkeypatch):
    url = "/api/runs/seg/segment"
    image = {"image": ("p.png", png_bytes(photo), "image/png")}
    assert_error(segment_client.post(f"{url}/mask", files=image, data={"box": "1,2,3"}), 400, "box", "x0,y0,x1,y1")
    assert_error(segment_client.post(f"{url}/mask", files=image, data={"box": "a,b,c,d"}), 400, "box")
    assert_error(segment_client.post(f"{url}/mask", files=image, data={"box": "0,0,30,8"}), 400, "box", "<= 24")
    assert_error(segment_client.post(f"{url}/mask", files=image, data={"box": "5,5,5,9"}), 400, "box")
    tiny = {"image": ("t.png", png_bytes(np.zeros((3, 3, 3), np.uint8)), "image/png")}
    assert_error(segment_client.post(f"{url}/mask", files=tiny), 400, "image", "smaller than one")
    assert_error(segment_client.post(f"{url}/mask", files={"image": ("a.txt", b"hi", "text/plain")}), 415, "image")
    assert_error(segment_client.post(f"{url}/mask", files={"image": ("a.png", b"junk", "image/png")}), 415, "image")
    import masklab.serve.segments as segments_module

    monkeypatch.setattr(segments_module, "MAX_PIXELS", 100)  # a size limit is a 413, as the body's is
    assert_error(segment_client.post(f"{url}/mask", files=image), 413, "image", "upload 'image' is", "allowed")
    monkeypatch.undo()
    assert_error(segment_client.post(f"{url}/mask", data={"box": BOX}), 400, "image", "either")
    assert_error(segment_client.post(f"{url}/mask", data={"example": 7}), 400, "example", "out of range")
    edit = f"{url}/edit"
    assert_error(segment_client.post(edit, files=image, data={"edit": "sharpen"}), 400, "edit", "remove-background")
    assert_error(segment_client.post(edit, files=image, data={"edit": "blur-background", "radius": 0}), 400, "radius")
    assert_error(segment_client.post(edit, files=image, data={"edit": "replace-background"}), 400, "background")
    bad_bg = {**image, "background": ("b.txt", b"x", "text/plain")}
    assert_error(segment_client.post(edit, files=bad_bg, data={"edit": "replace-background"}), 415, "background")
    assert_error(segment_client.post(edit, files=image, data={"edit": "remove-subject"}), 400, "image", "every patch")
    unfinished = segment_client.post("/api/runs/unfinished/segment/edit", files=image, data={"edit": "remove-subject"})
    assert_error(unfinished, 400, "edit", "not offered", "gone")
    assert_error(segment_client.post("/api/runs/plain/segment/mask", files=image), 400, "run", "segment train")
    assert_error(segment_client.post("/api/runs/segment/reconstruct", data={"example": 0}), 400, "run", "segment run")
    import masklab.recipes.segment as recipe

    monkeypatch.setattr(recipe, "predict_mask", lambda seg, x, box=None: torch.zeros(x.shape[1:], dtype=torch.long))
    assert_error(segment_client.post(edit, files=image, data={"box": BOX}), 400, "box", "no subject inside the box")
    assert_error(segment_client.post(edit, files=image), 400, "image", "no subject in this image")
