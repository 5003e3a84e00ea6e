"""16-bit gray uploads to the server are rescaled to 8 bits as training reads them (not clipped to white by
PIL's ``convert``): the segmentation panel's mask and edits, and the MAE panel's upload, answer exactly as for
the same picture saved as 8 bits."""

import io

import numpy as np
from PIL import Image

from tests.serve.test_api import png_bytes


def gray16_png() -> tuple[bytes, bytes]:
    """A 20x24 16-bit gray PNG (a bright square on a dim background) and its training-rescaled 8-bit twin."""
    rng = np.random.default_rng(3)
    a = (rng.random((20, 24)) * 30000).astype(np.uint16)
    a[4:12, 6:14] = 60000
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return buffer.getvalue(), png_bytes(np.clip(a / 65535.0 * 255.0, 0, 255).astype(np.uint8))


def test_segment_mask_and_edit_of_a_16_bit_upload(segment_client):
    wide, narrow = gray16_png()
    url = "/api/runs/seg/segment"
    answers = []
    for data in (wide, narrow):
        image = {"image": ("g.png", data, "image/png")}
        mask = segment_client.post(f"{url}/mask", files=image)
        assert mask.status_code == 200, mask.text
        blurred = segment_client.post(f"{url}/edit", files=image, data={"edit": "blur-background", "box": "0,0,8,8"})
        assert blurred.status_code == 200, blurred.text
        answers.append((mask.json(), np.asarray(Image.open(io.BytesIO(blurred.content)))))
    (mask16, blur16), (mask8, blur8) = answers
    for key in ("mask", "overlay", "side_by_side", "subject_fraction"):
        assert mask16[key] == mask8[key], key
    assert blur16.dtype == np.uint8 and (blur16 == 255).mean() < 0.05
    np.testing.assert_array_equal(blur16, blur8)


def test_replace_background_with_a_16_bit_background(segment_client):
    wide, narrow = gray16_png()
    photo = {"image": ("p.png", png_bytes(np.full((20, 24, 3), 90, np.uint8)), "image/png")}
    got = []
    for data in (wide, narrow):
        files = {**photo, "background": ("b.png", data, "image/png")}
        form = {"edit": "replace-background", "box": "0,0,8,8"}
        response = segment_client.post("/api/runs/seg/segment/edit", files=files, data=form)
        assert response.status_code == 200, response.text
        got.append(np.asarray(Image.open(io.BytesIO(response.content))))
    np.testing.assert_array_equal(got[0], got[1])


def test_mae_panel_upload_of_a_16_bit_image(client):
    wide, narrow = gray16_png()
    bodies = []
    for data in (wide, narrow):
        response = client.post("/api/runs/mae/reconstruct", files={"image": ("g.png", data, "image/png")},
                               data={"masking": "random", "seed": 1})  # fmt: skip
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    assert bodies[0]["original"] == bodies[1]["original"]
    assert bodies[0]["reconstruction"] == bodies[1]["reconstruction"]
