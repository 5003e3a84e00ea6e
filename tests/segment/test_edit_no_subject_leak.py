"""Background edits and object removal take nothing from the subject: the blurred background is a blur of the
background alone (the whole image was blurred, so a halo of subject colour spread into the background), and
the MAE that fills a removed subject sees no subject colour (the antialiased resize carried it into visible
patches)."""

import numpy as np
import pytest
import torch

from masklab.models.mae import MAE, MAEConfig
from masklab.recipes.edit import blur_background, remove_subject

TINY = dict(image_size=(16, 16), patch_size=4, channels=3, dim=16, depth=1, heads=2, decoder_dim=16,
            decoder_depth=1, decoder_heads=2, mask_ratio=0.75)  # fmt: skip


def _normalised_blur(image, background, sigma):
    """float64 reference: sum of w * pixel over background pixels / sum of w, w a Gaussian cut at 3 sigma."""
    H, W, C = image.shape
    half = int(np.ceil(3 * sigma))
    out = np.zeros((H, W, C))
    for y in range(H):
        for x in range(W):
            ys, xs = np.mgrid[max(0, y - half) : min(H, y + half + 1), max(0, x - half) : min(W, x + half + 1)]
            # separable kernel = product of the 1-D ones, each normalised over -half..half
            w1 = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
            w1 /= w1.sum()
            w = w1[ys - y + half] * w1[xs - x + half] * background[ys, xs]
            out[y, x] = (w[..., None] * image[ys, xs]).sum((0, 1)) / w.sum() if w.sum() > 0 else 0
    return out


def test_the_blurred_background_holds_no_subject_colour():
    image = np.zeros((40, 40, 3), np.uint8)
    subject = np.zeros((40, 40), bool)
    subject[10:30, 10:30] = True
    image[subject] = 255
    out = blur_background(image, subject, 3.0)
    assert out[~subject].max() == 0  # was 111, with 788 of 1,200 background pixels lit
    np.testing.assert_array_equal(out[subject], image[subject])


def test_the_blur_is_a_gaussian_of_the_background_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    subject = np.zeros((23, 31), bool)
    subject[5:12, 7:20] = True
    out = blur_background(image, subject, 2.0)
    expected = np.round(_normalised_blur(image.astype(np.float64), ~subject, 2.0))
    np.testing.assert_array_equal(out[~subject], expected[~subject].astype(np.uint8))
    np.testing.assert_array_equal(out[subject], image[subject])


@pytest.mark.parametrize("size", [(64, 64), (100, 100), (130, 200)])
def test_the_mae_filling_a_removed_subject_sees_no_subject_colour(size, monkeypatch):
    torch.manual_seed(0)
    mae = MAE(MAEConfig(**TINY)).eval()
    seen = []
    original = MAE.reconstruct

    def spy(self, images, masked):
        seen.append((images.clone(), masked.clone()))
        return original(self, images, masked)

    monkeypatch.setattr(MAE, "reconstruct", spy)
    H, W = size
    subject = np.zeros((H, W), bool)
    subject[H // 4 : H // 2, W // 4 : W // 2] = True
    dark = np.full((H, W, 3), 40, np.uint8)
    bright = dark.copy()
    bright[subject] = 255
    out = [remove_subject(mae, image, subject) for image in (dark, bright)]
    (dark_in, masked), (bright_in, _) = seen
    visible = ~masked[0].view(4, 4).repeat_interleave(4, 0).repeat_interleave(4, 1)  # (16, 16) model pixels
    assert torch.equal(dark_in[0][:, visible], bright_in[0][:, visible])  # changed by up to 32/255
    np.testing.assert_array_equal(out[0], out[1])  # same fill: nothing of the subject reached the model
    np.testing.assert_array_equal(out[1][~subject], bright[~subject])


def test_a_subject_covering_the_whole_image_is_refused():
    mae = MAE(MAEConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="covers every patch"):
        remove_subject(mae, np.zeros((16, 16, 3), np.uint8), np.ones((16, 16), bool))


def test_edit_with_a_hand_made_mask_names_a_missing_run(tmp_path, capsys):
    # With --mask a background edit never opens RUN, so a mistyped RUN exited 0 without a word.
    from PIL import Image

    from masklab.cli import main

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    args = ["edit", str(tmp_path / "no-run"), str(tmp_path / "img.png"), "--remove-background", "--mask",
            str(tmp_path / "m.png"), "-o", str(tmp_path / "out.png")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "RUN " in err and "no-run is not a folder" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()
    (tmp_path / "no-run").mkdir()
    assert main(args) == 0 and (tmp_path / "out.png").exists()
