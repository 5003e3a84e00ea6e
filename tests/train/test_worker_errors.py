"""A data error inside a DataLoader worker reads as it does with ``workers=0``: the original exception type
and one-line message (torch re-raised it as "Caught ValueError in DataLoader worker process 1. Original
Traceback ..."), plus what the checkpoint holds."""

from __future__ import annotations

import errno

import pytest
import torch
from train_tiny import TinyData, TinyModel, make_config

from masklab.cli import _message
from masklab.train import fit

BAD = 37


class BrokenData(TinyData):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> dict:
        if BAD in indices.tolist():
            if self.error == "value":
                raise ValueError(f"cannot read image img{BAD}.png: image file is truncated")
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"img{BAD}.png")
        return super().get_batch(indices, generator)


def _fail(tmp_path, workers: int, error: str) -> BaseException:
    torch.manual_seed(0)
    model = TinyModel()
    cfg = make_config(steps=30, ckpt_every=1, workers=workers)
    with pytest.raises((ValueError, OSError)) as info:
        fit(model, BrokenData(error), cfg, tmp_path / f"{error}{workers}", model_config=model.config(), progress=False)
    return info.value


@pytest.mark.parametrize("error", ["value", "oserror"])
def test_worker_error_reads_as_in_process(tmp_path, error):
    in_process, in_worker = _fail(tmp_path, 0, error), _fail(tmp_path, 2, error)
    assert type(in_worker) is type(in_process)
    shown = [_message(e).replace(f"{error}2", f"{error}0") for e in (in_process, in_worker)]
    assert shown[0] == shown[1], shown
    assert "Caught" not in shown[1] and "Traceback" not in shown[1] and "\n" not in shown[1]
    assert f"img{BAD}.png" in shown[1] and "checkpoint.safetensors holds step" in shown[1]
