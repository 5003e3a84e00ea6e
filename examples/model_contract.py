"""The MaskedModel contract by hand: build from a preset, one training step, save and rebuild the config."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch

from masklab.core.contract import MaskedModel
from masklab.models.mae import MAE


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # no options; --help says what this shows
    model = MAE.from_preset("mae-tiny")  # one preset table per model family
    assert isinstance(model, MaskedModel)
    h, w = model.config.image_size
    batch = SimpleNamespace(images=torch.rand(8, model.config.channels, h, w), labels=None)
    generator = torch.Generator().manual_seed(0)  # every random draw (the mask too) replays from the seed
    out = model.training_loss(batch, generator)  # loss on the hidden patches only
    out.loss.backward()
    print(f"{model.kind}: loss {out.loss.item():.4f}")
    again = type(model.config).from_dict(model.config.to_dict())  # the config round-trips through JSON
    assert again == model.config
    features = model.embed(batch.images)  # pooled (B, D) features for probes and retrieval
    print(f"features {tuple(features.shape)}")


if __name__ == "__main__":
    main()
