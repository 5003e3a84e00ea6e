"""``predict_mask`` sees an image as training does (cover + windows, aspect kept; it stretched it), and
``box`` crops the mask to the box."""

from types import SimpleNamespace

import numpy as np
import torch

from masklab.recipes.segment import predict_mask


class Bright(torch.nn.Module):
    """A stand-in head: subject where the pixel is bright; records what it is shown."""

    def __init__(self) -> None:
        super().__init__()
        self.mae = SimpleNamespace(config=SimpleNamespace(channels=3, patch_size=4, image_size=(32, 32)))
        self.p = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x)
        b = x.mean(1, keepdim=True) - 0.5
        return torch.cat([-b, b], 1)


def _extent(a):
    ys, xs = np.nonzero(a)
    return ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_the_head_sees_the_image_with_its_aspect_ratio():
    seg = Bright()
    image = torch.zeros(3, 100, 60)
    image[:, 40:70, 15:45] = 1  # a 30x30 square
    pred = predict_mask(seg, image).numpy() > 0
    shown = torch.cat(seg.seen)[:, 0] > 0.5  # (n, 32, 32)
    assert shown.shape[1:] == (32, 32)
    whole = shown[shown.flatten(1).sum(1).argmax()].numpy()  # the window showing all of the square
    h, w = _extent(whole)
    assert abs(h - w) <= 1  # stretched, it was 10x16
    truth = np.zeros((100, 60), bool)
    truth[40:70, 15:45] = True
    assert (pred & truth).sum() / (pred | truth).sum() > 0.9


def test_box_crops_the_mask_to_the_box():
    image = torch.zeros(3, 64, 64)
    image[:, 10:30, 10:30] = 1  # crosses the box's right edge
    image[:, 40:60, 40:60] = 1  # outside the box
    pred = predict_mask(Bright(), image, box=(0, 0, 20, 20)).numpy() > 0
    assert pred[12:18, 12:18].all() and not pred[:, 20:].any() and not pred[20:].any()
