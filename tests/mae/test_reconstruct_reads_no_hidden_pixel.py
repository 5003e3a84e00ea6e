"""``MAE.reconstruct`` of a ``norm_pix_loss`` model reads nothing from the hidden patches' pixels: their
statistics come from the visible patches (they came from the true image, so a notebook's reconstruction of a
model predicting nothing drew the hidden patches' brightness)."""

import torch

from masklab.models.mae import MAE, MAEConfig

TINY = dict(image_size=(16, 16), patch_size=4, channels=1, dim=16, depth=1, heads=2, decoder_dim=16,
            decoder_depth=1, decoder_heads=2, mask_ratio=0.75, norm_pix_loss=True)  # fmt: skip


def test_hidden_pixels_do_not_reach_a_norm_pix_reconstruction():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY)).eval()
    masked = torch.zeros(2, 16, dtype=torch.bool)
    masked[:, [0, 5, 6, 15]] = True
    images = torch.rand(2, 1, 16, 16)
    other = images.clone()
    hidden = masked.view(2, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None]  # (2, 1, 16, 16)
    other[hidden] = 1.0 - other[hidden]  # only hidden pixels change
    with torch.no_grad():
        a, b = model.reconstruct(images, masked), model.reconstruct(other, masked)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_without_a_mask_each_patch_gets_its_own_statistics_back():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY)).eval()
    images = torch.rand(1, 1, 16, 16)
    from masklab.tokenizers.patches import patchify

    target = patchify(model.normalize(images), 4)
    mean = target.mean(-1, keepdim=True)
    std = (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    pred = (target - mean) / std  # a perfect prediction
    torch.testing.assert_close(model.pixels_from_pred(pred, images), images.clamp(0, 1), rtol=0, atol=1e-5)
