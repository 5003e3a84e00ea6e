"""Editing takes read-only images and masks (``np.asarray`` of a PIL image is read-only) without torch's "The
given NumPy array is not writable" warning, which the CLI printed as ``masklab: warning: ...``."""

import warnings

import numpy as np
import torch

from masklab.models.mae import MAE, MAEConfig
from masklab.recipes.edit import remove_subject

TINY = dict(image_size=(16, 16), patch_size=4, channels=1, dim=16, depth=1, heads=2, decoder_dim=16,
            decoder_depth=1, decoder_heads=2, mask_ratio=0.75)  # fmt: skip


def test_remove_subject_takes_read_only_arrays():
    torch.manual_seed(0)
    mae = MAE(MAEConfig(**TINY)).eval()
    image = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16, 1)
    subject = np.zeros((16, 16), dtype=bool)
    subject[4:8, 4:8] = True
    image.flags.writeable = False
    subject.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = remove_subject(mae, image, subject)
    np.testing.assert_array_equal(out[~subject], image[~subject])  # only the subject's pixels change
