"""MAE with learned (adversarial) and attention-guided masks: budgets, the one-backward min-max, checkpoints,
and the command line (``pretrain mae --mask ...``, ``finetune --augment``)."""

import json

import pytest
import torch

from masklab.cli import main
from masklab.masks.generators import MaskSample, ids_from_masked
from masklab.models.mae import MAE, MAEConfig
from masklab.tokenizers.patches import patchify

TINY = dict(image_size=(8, 8), patch_size=2, channels=1, dim=16, depth=2, heads=2, decoder_dim=16,
            decoder_depth=1, decoder_heads=2, mask_ratio=0.75)  # fmt: skip


class Batch:
    def __init__(self, images):
        self.images = images


def images(n=6, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["learned", "attention-high", "attention-low"])
def test_budget_is_exact_and_ids_match(kind):
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY, mask_kind=kind))
    x = model.normalize(images())
    mask = model.sample_mask(6, generator=torch.Generator().manual_seed(1), x=x)
    assert mask.masked.shape == (6, 16) and mask.masked.dtype == torch.bool
    assert (mask.masked.sum(1) == 16 - int(16 * 0.25)).all()
    keep, restore = ids_from_masked(mask.masked)
    assert torch.equal(mask.ids_keep.sort(1).values, keep.sort(1).values) and mask.ids_restore.shape == restore.shape
    out = model(images(), generator=torch.Generator().manual_seed(1))  # forward draws the same kind of mask
    assert (out.masked.sum(1) == 12).all() and torch.isfinite(out.loss)


def test_image_dependent_kinds_need_images():
    model = MAE(MAEConfig(**TINY, mask_kind="attention-high"))
    with pytest.raises(ValueError, match="depends on the images"):
        model.sample_mask(2)


def test_attention_high_hides_the_most_attended_patches():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY, mask_kind="attention-high", attention_noise=0.0))
    x = model.normalize(images())
    scores = model.patch_importance(x)  # (B, L)
    masked = model.sample_mask(6, x=x).masked
    for row in range(6):  # every hidden patch scores at least as high as every visible one
        assert scores[row][masked[row]].min() >= scores[row][~masked[row]].max()
    low = MAE(MAEConfig(**TINY, mask_kind="attention-low", attention_noise=0.0))
    low.load_state_dict(model.state_dict())
    masked_low = low.sample_mask(6, x=x).masked
    for row in range(6):
        assert scores[row][masked_low[row]].max() <= scores[row][~masked_low[row]].min()


def test_patch_importance_is_the_cls_attention_row():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY, mask_kind="attention-high")).double()
    x = model.normalize(images().double())
    tokens = model.patch_embed(patchify(x, 2)) + model.pos_embed
    seq = torch.cat([model.cls_token.expand(6, -1, -1), tokens], dim=1)
    _, weights = model.encoder(seq, return_weights=True)
    expected = weights[-1].mean(1)[:, 0, 1:]  # last layer, head mean, CLS query, patch keys
    torch.testing.assert_close(model.patch_importance(x).double(), expected.float().double(), rtol=0, atol=1e-6)
    assert torch.allclose(weights[-1].sum(-1), torch.ones(()).double())


def test_learned_loss_value_is_the_mae_loss_and_both_sides_get_gradients():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY, mask_kind="learned"))
    with torch.no_grad():  # a non-zero masker head, so the relaxed mask has a gradient to carry
        torch.nn.init.normal_(model.adversary.masker.head.weight, std=0.5)
    batch = Batch(images())
    out = model.training_loss(batch, torch.Generator().manual_seed(3))
    proposal = model.sample_mask(6, generator=torch.Generator().manual_seed(3), x=model.normalize(batch.images))
    replay = model(batch.images, mask=MaskSample(proposal.masked, proposal.ids_keep, proposal.ids_restore))
    torch.testing.assert_close(out.loss, replay.loss)  # the masker term adds gradient, not value
    out.loss.backward()
    masker_grad = model.adversary.masker.head.weight.grad
    assert masker_grad is not None and masker_grad.abs().sum() > 0
    assert model.patch_embed.weight.grad.abs().sum() > 0
    assert {"masker_objective", "masker_nonflat_hidden"} <= set(out.metrics)


def test_masker_ascends_the_loss_it_is_given():
    """One SGD step on the combined loss moves the masker towards the patches with the larger error."""
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY, mask_kind="learned", masker={"spread_weight": 0.0}))
    patches = patchify(model.normalize(images()), 2)
    g = torch.Generator().manual_seed(0)
    proposal = model.adversary.propose(patches, g)
    per_patch = torch.zeros(6, 16)
    per_patch[:, :8] = 1.0  # the first half is "hard"
    objective = model.adversary.loss(patches, per_patch, proposal)
    objective.backward()
    with torch.no_grad():
        for p in model.adversary.masker.parameters():
            if p.grad is not None:
                p -= 1.0 * p.grad
        logits = model.adversary.masker(patches)
    assert logits[:, :8].mean() > logits[:, 8:].mean()


def test_masker_weights_travel_with_the_checkpoint_and_finetune_drops_them():
    config = MAEConfig(**TINY, mask_kind="learned", masker={"dim": 8, "spread_weight": 0.2})
    model = MAE(config)
    assert any(k.startswith("adversary.masker.") for k in model.state_dict())
    again = MAE.from_config(json.loads(json.dumps(config.to_dict())))
    again.load_state_dict(model.state_dict())  # strict: every key matches
    with pytest.raises(ValueError, match="follow from the image"):
        MAEConfig(**TINY, mask_kind="learned", masker={"in_dim": 3})
    with pytest.raises(ValueError, match="only apply to mask_kind='learned'"):
        MAEConfig(**TINY, mask_kind="random", masker={"dim": 8})
    with pytest.raises(ValueError, match="unknown LearnedMaskerConfig fields"):
        MAEConfig(**TINY, mask_kind="learned", masker={"width": 8})


@pytest.mark.parametrize("kind", ["learned", "attention-high"])
def test_cli_pretrain_with_mask_kind_then_finetune_with_augment(kind, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "3",
                 "--batch-size", "16", "--device", "cpu", "--mask", kind, "--out", str(run)]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["mask_kind"] == kind
    assert main(["reconstruct", str(run), "--count", "2", "-o", str(tmp_path / "g.png")]) == 0
    out = tmp_path / "ft"
    assert main(["finetune", str(run), "--steps", "2", "--batch-size", "16", "--device", "cpu",
                 "--augment", "mask:0.25,cutout:0.1", "--out", str(out)]) == 0  # fmt: skip
    ft = json.loads((out / "config.json").read_text())["model"]
    assert ft["mask_kind"] == "random" and ft["masker"] is None and ft["mask_ratio"] == 0.0
    assert json.loads((out / "data.json").read_text())["finetune_augment"] == "mask:0.25,cutout:0.1"


def test_finetune_rejects_a_bad_augment(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "1",
                 "--batch-size", "8", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    assert main(["finetune", str(run), "--steps", "1", "--augment", "tokendrop:0.2", "--out",
                 str(tmp_path / "ft")]) == 2  # fmt: skip
    assert "'tokendrop:0.2' is not NAME:FRACTION" in capsys.readouterr().err
