"""The one device resolver: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a checked ``torch.device``."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; an unavailable cuda device is a ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not str(name).startswith("cuda"):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available; use device='cpu' or 'auto'")
    device = torch.device(name)
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)
