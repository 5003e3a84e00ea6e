"""MAE's public methods refuse float64 images on a float32 model and masks of the wrong shape with a ValueError
that names the dtypes / the patch grid (not a raw torch error from deep inside a Linear); bf16 images still work."""

import pytest
import torch

from masklab.masks.generators import MaskSample, random_masking
from masklab.models.mae import MAE


@pytest.fixture
def model() -> MAE:
    torch.manual_seed(0)
    return MAE.from_preset("mae-tiny", channels=1).eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))


def test_float64_images_are_refused_naming_both_dtypes(model, images):
    mask = random_masking(2, 16, 0.5, generator=torch.Generator().manual_seed(0))
    calls = [
        lambda x: model.embed(x),
        lambda x: model.encode(x),
        lambda x: model(x, generator=torch.Generator().manual_seed(0)),
        lambda x: model(x, mask=mask),
        lambda x: model.reconstruct(x, mask.masked),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"float64.*float32.*\.float\(\)"):
            call(images.double())


def test_float64_images_work_on_a_float64_model(model, images):
    assert model.double().embed(images.double()).dtype == torch.float64


def test_bf16_images_still_work(model, images):
    out = model.embed(images.bfloat16())
    assert out.shape == (2, 32) and bool(torch.isfinite(out).all())
    assert torch.allclose(out, model.embed(images.bfloat16().float()))


@pytest.mark.parametrize("masked", [torch.zeros(2, 15, dtype=torch.bool), torch.zeros(3, 16, dtype=torch.bool)])
def test_reconstruct_refuses_a_mask_of_the_wrong_shape(model, images, masked):
    with pytest.raises(ValueError, match=rf"masked.*\(2, 16\).*4x4 patch grid.*{masked.shape[0]}, "):
        model.reconstruct(images, masked)


def test_reconstruct_refuses_a_non_bool_mask(model, images):
    with pytest.raises(ValueError, match="masked must be a bool tensor"):
        model.reconstruct(images, torch.zeros(2, 16, dtype=torch.long))


@pytest.mark.parametrize(
    "mask",
    [
        random_masking(3, 16, 0.5, generator=torch.Generator().manual_seed(0)),  # batch 3 for 2 images
        MaskSample(torch.zeros(2, 15, dtype=torch.bool), torch.zeros(2, 15, dtype=torch.long)),
    ],
)
def test_forward_refuses_a_mask_of_the_wrong_shape(model, images, mask):
    with pytest.raises(ValueError, match=r"masked.*\(2, 16\).*4x4 patch grid"):
        model(images, mask=mask)


def test_right_masks_still_run(model, images):
    mask = random_masking(2, 16, 0.5, generator=torch.Generator().manual_seed(0))
    assert model(images, mask=mask).pred.shape == (2, 16, 16)
    assert model.reconstruct(images, mask.masked).shape == images.shape
