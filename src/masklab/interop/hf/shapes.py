"""Weights read from a Hugging Face folder must have the shapes its ``config.json`` promises; a tensor that
does not is an error naming the tensor, both shapes and the config field behind the differing size (torch's
``load_state_dict`` raises a bare size-mismatch ``RuntimeError``)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn


def load_checked(
    model: nn.Module, state: Mapping[str, Tensor], fields: Mapping[str, tuple[str, ...]], *, strict: bool = True
) -> tuple[list[str], list[str]]:
    """``model.load_state_dict(state, strict=strict)`` after checking every shape against ``model``'s own.

    ``fields``: substring of a masklab parameter name -> the config field behind each of its dimensions (the
    last one repeats); the first substring found in a name applies. Returns ``(missing, unexpected)``."""
    own = model.state_dict()
    for name, tensor in state.items():
        got, want = tuple(tensor.shape), tuple(own[name].shape) if name in own else None
        if want is None or got == want:
            continue
        per_dim = next((f for part, f in fields.items() if part in name), ())
        blamed: list[str] = []
        if per_dim and len(got) == len(want):
            differ = [i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b]
            blamed = sorted({per_dim[min(i, len(per_dim) - 1)] for i in differ})
        hint = f" (check {' and '.join(blamed)})" if blamed else ""
        raise ValueError(f"weights do not match config.json: {name} has shape {got}, the config gives {want}{hint}")
    missing, unexpected = model.load_state_dict(state, strict=strict)
    return list(missing), list(unexpected)
