"""Masking as augmentation: exact fractions, protected tokens, batch types, replay, parsing, occlusion."""

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab.data.augment import AugmentedData, parse_augment
from masklab.eval.occlusion import occlude
from masklab.masks.augment import CellMasking, Compose, Cutout, MaskSubstitution, PatchDrop, RandomErasing, TokenDropout

FAST = settings(max_examples=25, deadline=None)
CLS, SEP, PAD, MASK = 2, 3, 0, 4


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@dataclasses.dataclass
class ImageBatch:  # the shape of masklab.data.images.ImageBatch
    images: torch.Tensor
    labels: torch.Tensor | None = None


def text_batch() -> dict:
    """Two rows framed [CLS] ... [SEP] with right padding; word ids -1 at specials and padding."""
    ids = torch.tensor([[CLS, 10, 11, 12, 13, 14, 15, 16, 17, SEP], [CLS, 20, 21, 22, 23, SEP, PAD, PAD, PAD, PAD]])
    padding = ids == PAD
    word_ids = torch.tensor([[-1, 0, 1, 2, 3, 4, 5, 6, 7, -1], [-1, 0, 1, 2, 3, -1, -1, -1, -1, -1]])
    return {"ids": ids, "padding": padding, "word_ids": word_ids, "labels": torch.tensor([1, 0])}


# ---------------------------------------------------------------------------------------------- images
@FAST
@given(fraction=st.floats(0.0, 0.99), patch=st.sampled_from([1, 2, 4, 7]), seed=st.integers(0, 2**16))
def test_patch_drop_hides_an_exact_number_of_patches(fraction, patch, seed):
    images = torch.rand(3, 2, 28, 28, generator=seeded(seed)) + 0.1  # no zero pixels before dropping
    out = PatchDrop(fraction, patch=patch)(images, seeded(seed))
    L = (28 // patch) ** 2
    zero_pixels = (out == 0).all(dim=1).flatten(1).sum(1)  # (B,) pixels zeroed in every channel
    assert zero_pixels.tolist() == [(L - int(L * (1 - fraction))) * patch * patch] * 3
    kept = out != 0
    assert torch.equal(out[kept], images[kept])  # untouched elsewhere


@FAST
@given(fraction=st.floats(0.0, 1.0), h=st.integers(5, 33), w=st.integers(5, 33), seed=st.integers(0, 2**16))
def test_cutout_area_is_the_fraction_within_rounding(fraction, h, w, seed):
    images = torch.ones(4, 1, h, w)
    hidden = Cutout(fraction).hidden(tuple(images.shape), seeded(seed))  # (B, H, W)
    pixels = hidden.flatten(1).sum(1).double()  # (B,)
    side = max(h, w)  # one side is rounded: at most half a row or column off
    assert (pixels - fraction * h * w).abs().max() <= side / 2 + 1e-9
    assert hidden.flatten(1).sum(1).unique().numel() == 1  # same rectangle size in every image
    rows, cols = hidden.any(2), hidden.any(1)  # a single solid rectangle
    assert torch.equal(hidden.flatten(1).sum(1), rows.sum(1) * cols.sum(1))


def test_image_transforms_accept_tensors_batches_and_dicts_and_replay():
    images = torch.rand(5, 3, 16, 16, generator=seeded(0))
    labels = torch.arange(5)
    for transform in (Cutout(0.25), PatchDrop(0.5), RandomErasing(p=1.0), RandomErasing(p=1.0, value=0.5)):
        a = transform(images, seeded(1))
        assert a.shape == images.shape and not torch.equal(a, images)
        assert torch.equal(transform(images, seeded(1)), a)  # same seed, same augmentation
        batch = transform(ImageBatch(images, labels), seeded(1))
        assert torch.equal(batch.images, a) and torch.equal(batch.labels, labels)
        assert torch.equal(transform({"images": images}, seeded(1))["images"], a)
    assert torch.equal(images, torch.rand(5, 3, 16, 16, generator=seeded(0)))  # never in place


def test_random_erasing_probability_and_fill():
    images = torch.full((400, 1, 16, 16), 2.0)  # outside [0, 1) so erased pixels are recognisable
    out = RandomErasing(p=0.5)(images, seeded(0))
    erased = (out != 2.0).flatten(1).any(1).float().mean()
    assert 0.4 < erased < 0.6
    assert ((out >= 0) & (out < 1) | (out == 2.0)).all()  # uniform random values in [0, 1)
    assert torch.equal(RandomErasing(p=0.0)(images, seeded(0)), images)


# ------------------------------------------------------------------------------------------------ text
def test_mask_substitution_protects_specials_and_padding_and_is_exact():
    batch = text_batch()
    out = MaskSubstitution(0.5, mask_id=MASK, special_ids=(CLS, SEP, PAD))(batch, seeded(0))
    changed = out["ids"] != batch["ids"]
    assert changed.sum(1).tolist() == [4, 2]  # 8 - int(8 * 0.5), 4 - int(4 * 0.5) real tokens
    assert (out["ids"][changed] == MASK).all()
    assert torch.equal(out["ids"][:, 0], batch["ids"][:, 0]) and out["ids"][0, -1] == SEP and out["ids"][1, 5] == SEP
    assert torch.equal(out["padding"], batch["padding"]) and torch.equal(out["labels"], batch["labels"])


def test_token_dropout_deletes_and_closes_up():
    batch = text_batch()
    out = TokenDropout(0.5, pad_id=PAD, special_ids=(CLS, SEP))(batch, seeded(0))
    assert (~out["padding"]).sum(1).tolist() == [6, 4]  # 10 - 4 and 6 - 2 tokens remain
    for row in range(2):
        kept = out["ids"][row][~out["padding"][row]].tolist()
        original = batch["ids"][row][~batch["padding"][row]].tolist()
        assert kept[0] == CLS and kept[-1] == SEP
        it = iter(original)
        assert all(token in it for token in kept)  # a subsequence: order kept
        words = out["word_ids"][row][~out["padding"][row]].tolist()
        assert words == [batch["word_ids"][row][original.index(t)].item() for t in kept]
    assert (out["ids"][out["padding"]] == PAD).all() and (out["word_ids"][out["padding"]] == -1).all()
    bare = TokenDropout(0.5, special_ids=(CLS, SEP, PAD))(batch["ids"], seeded(0))
    assert bare.shape == batch["ids"].shape


# ---------------------------------------------------------------------------------------------- tables
def test_cell_masking_hides_only_observed_cells():
    missing = torch.tensor([[False, True, False, False], [False, False, False, False]])
    batch = {"values": torch.randn(2, 4), "categories": torch.ones(2, 4, dtype=torch.long), "missing": missing}
    out = CellMasking(0.5)(batch, seeded(0))
    new = out["missing"] & ~missing
    assert new.sum(1).tolist() == [2, 2]  # 3 - int(1.5), 4 - int(2.0) observed cells
    assert (out["values"][new] == 0).all() and (out["categories"][new] == 0).all()
    table = torch.tensor([[1.0, math.nan, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    masked = CellMasking(0.5)(table, seeded(0))
    assert torch.isnan(masked).sum(1).tolist() == [3, 2]


# ---------------------------------------------------------------------------------- parse / compose
def test_parse_augment_per_modality():
    assert parse_augment("mask:0.25", "image") == PatchDrop(0.25, patch=4)
    assert parse_augment("mask:0.25", "image", patch_size=7) == PatchDrop(0.25, patch=7)
    assert parse_augment("mask:0.25", "text", mask_id=MASK, special_ids=(CLS,)) == MaskSubstitution(
        0.25, mask_id=MASK, special_ids=(CLS,)
    )
    assert parse_augment("tokendrop:0.1", "text", pad_id=PAD) == TokenDropout(0.1, pad_id=PAD)
    assert parse_augment("mask:0.3", "table") == CellMasking(0.3)
    both = parse_augment("cutout:0.2, mask:0.1", "image")
    assert both == Compose((Cutout(0.2), PatchDrop(0.1)))
    images = torch.rand(2, 1, 8, 8, generator=seeded(0))
    g1, g2 = seeded(3), seeded(3)
    assert torch.equal(both(images, g1), PatchDrop(0.1)(Cutout(0.2)(images, g2), g2))


@pytest.mark.parametrize(
    ("spec", "modality", "match"),
    [
        ("mask", "image", "NAME:FRACTION"),
        ("blur:0.2", "image", "cutout"),
        ("mask:abc", "image", "not a number"),
        ("mask:1.5", "image", r"\[0, 1\)"),
        ("", "image", "mask:0.25"),
        ("mask:0.2", "audio", "modality"),
        ("mask:0.2", "text", "mask_id"),
        ("cells:0.2", "image", "patchdrop"),
    ],
)
def test_parse_augment_errors(spec, modality, match):
    with pytest.raises(ValueError, match=match):
        parse_augment(spec, modality)


# ---------------------------------------------------------------------------------------------- occlude
def test_occlude_fractions_and_determinism():
    images = torch.rand(6, 1, 28, 28, generator=seeded(0)) + 0.1
    for fraction in (0.25, 0.5):
        a = occlude(images, fraction, seeded(9), "image")
        assert torch.equal(a, occlude(images, fraction, seeded(9), "image"))
        hidden = (a == 0).flatten(1).float().mean(1)
        L = 49
        torch.testing.assert_close(hidden, torch.full((6,), (L - int(L * (1 - fraction))) / L))
        block = occlude(images, fraction, seeded(9), "image", kind="block")
        assert ((block == 0).flatten(1).float().mean(1) - fraction).abs().max() < 0.05
    text = occlude(text_batch(), 0.5, seeded(0), "text", mask_id=MASK, special_ids=(CLS, SEP, PAD))
    assert (text["ids"] == MASK).sum(1).tolist() == [4, 2]
    deleted = occlude(text_batch(), 0.5, seeded(0), "text", kind="delete", special_ids=(CLS, SEP))
    assert (~deleted["padding"]).sum(1).tolist() == [6, 4]
    with pytest.raises(ValueError, match="patches, block"):
        occlude(images, 0.25, seeded(0), "image", kind="mask")
    with pytest.raises(ValueError, match="fraction"):
        occlude(images, 1.0, seeded(0), "image")


def test_batch_errors_are_clear():
    with pytest.raises(ValueError, match="images"):
        PatchDrop(0.2)(torch.rand(2, 8, 8), seeded(0))
    with pytest.raises(ValueError, match="divisible"):
        PatchDrop(0.2, patch=3)(torch.rand(2, 1, 8, 8), seeded(0))
    with pytest.raises(ValueError, match="'padding'"):
        MaskSubstitution(0.2, mask_id=MASK)({"ids": torch.zeros(2, 3, dtype=torch.long)}, seeded(0))
    with pytest.raises(ValueError, match="integer ids"):
        MaskSubstitution(0.2, mask_id=MASK)(torch.rand(2, 3), seeded(0))
    with pytest.raises(ValueError, match="fraction"):
        CellMasking(1.0)


def test_augmented_data_transforms_batches_with_the_loop_generator():
    class Images:
        def __len__(self):
            return 10

        def get_batch(self, indices, generator):
            return ImageBatch(torch.ones(len(indices), 1, 8, 8), indices)

    data = AugmentedData(Images(), PatchDrop(0.5, patch=4))
    assert len(data) == 10
    batch = data.get_batch(torch.tensor([1, 2, 3]), seeded(0))
    assert torch.equal(batch.labels, torch.tensor([1, 2, 3]))
    assert (batch.images == 0).flatten(1).sum(1).tolist() == [32, 32, 32]  # 2 of 4 patches of 16 pixels
    assert torch.equal(data.get_batch(torch.tensor([1, 2, 3]), seeded(0)).images, batch.images)
    plain = AugmentedData(Images(), None).get_batch(torch.tensor([0]), seeded(0))
    assert torch.equal(plain.images, torch.ones(1, 1, 8, 8))
