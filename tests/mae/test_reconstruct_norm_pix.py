"""``masklab reconstruct`` (and serve's reconstruction) on an MAE trained with ``norm_pix_loss``: a hidden patch's
own mean and variance are unknown to the model, so they must not come from the true image. Before, a model that
predicts all zeros drew every hidden patch at its true mean brightness and beat the honest baseline (each hidden
pixel filled with the image's visible-pixel mean)."""

import torch

from masklab.cli import main
from masklab.eval.inpainting import psnr
from masklab.eval.reconstruction import NORM_PIX_NOTE, reconstruction_views
from masklab.masks.generators import random_masking
from masklab.models.mae import MAE
from masklab.tokenizers.patches import pixel_mask_from_patches


def blocky_images(count: int, seed: int = 0) -> torch.Tensor:
    """``(B, 1, 16, 16)`` images whose 4x4 patches each have their own brightness (plus a little texture)."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.rand(count, 1, 4, 4, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)
    return (0.8 * levels + 0.2 * torch.rand(count, 1, 16, 16, generator=g)).clamp(0, 1)


def visible_mean_fill_psnr(images: torch.Tensor, hidden: torch.Tensor) -> list[float]:
    out = []
    for image, hid in zip(images, hidden, strict=True):
        hid = hid.expand_as(image)
        fill = torch.where(hid, image[~hid].mean(), image)
        out.append(psnr(fill.numpy(), image.numpy(), hid.numpy()))
    return out


def test_a_model_predicting_nothing_does_not_beat_the_visible_mean_fill(monkeypatch):
    torch.manual_seed(0)
    model = MAE.from_preset("mae-tiny", channels=1, norm_pix_loss=True, pixel_mean=(0.4,), pixel_std=(0.3,)).eval()
    real_decoder = MAE.forward_decoder
    monkeypatch.setattr(
        MAE, "forward_decoder", lambda self, latent, mask: torch.zeros_like(real_decoder(self, latent, mask))
    )
    images = blocky_images(6)
    masked = random_masking(
        len(images), model.config.num_patches, 0.75, generator=torch.Generator().manual_seed(1)
    ).masked
    views = reconstruction_views(model, images, masked)
    hidden = pixel_mask_from_patches(masked, 4, model.config.grid)[:, None]
    fill = visible_mean_fill_psnr(images, hidden)
    assert sum(views.psnr) / len(views.psnr) <= sum(fill) / len(fill) + 1e-3
    # a hidden patch is drawn from the visible patches alone: changing hidden pixels changes nothing drawn
    changed = torch.where(hidden, 1 - images, images)
    assert torch.equal(
        reconstruction_views(model, changed, masked).reconstruction * hidden, views.reconstruction * hidden
    )
    assert views.note == NORM_PIX_NOTE


def test_reconstruct_says_how_a_norm_pix_run_is_drawn(tmp_path, capsys):
    run = tmp_path / "np"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "2",
                 "--batch-size", "8", "--norm-pix-loss", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["reconstruct", str(run), "--count", "2", "-o", str(tmp_path / "g.png"), "--quiet"]) == 0
    assert NORM_PIX_NOTE in capsys.readouterr().out
