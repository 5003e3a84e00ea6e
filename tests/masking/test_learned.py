"""Learned (adversarial) masks: exact budget, replay, gradients, the objective, and finding hard tokens."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from masklab.masks.attention_guided import masked_count_for
from masklab.masks.generators import ids_from_masked
from masklab.masks.learned import (
    LearnedMaskSample,
    gumbel_noise,
    logit_spread,
    masker_loss,
    normalized_entropy,
    relaxed_topk,
    sample,
)
from masklab.models.mae.masker import AdversarialMasking, LearnedMasker, LearnedMaskerConfig

FAST = settings(max_examples=40, deadline=None)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@FAST
@given(
    batch=st.integers(1, 6),
    length=st.integers(1, 70),
    ratio=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**16),
    padded=st.booleans(),
)
def test_budget_is_exact_for_any_shape_and_ratio(batch, length, ratio, seed, padded):
    g = seeded(seed)
    logits = torch.randn(batch, length, generator=g) * 3
    padding = None
    if padded:
        lengths = torch.randint(1, length + 1, (batch,), generator=g)
        padding = torch.arange(length)[None, :] >= lengths[:, None]  # (B, L) right padding
    out = sample(logits, ratio, g, padding=padding)
    n_real = torch.full((batch,), length) if padding is None else (~padding).sum(1)
    expected = torch.tensor([n - int(n * (1 - ratio)) for n in n_real.tolist()])
    assert torch.equal(out.masked.sum(1), expected)
    if padding is not None:
        assert not (out.masked & padding).any()
    # Straight-through: the soft mask's value is the hard mask.
    assert torch.equal(out.soft, out.masked.float())
    if padding is None:
        assert torch.equal(out.ids_keep, ids_from_masked(out.masked)[0])
        assert torch.equal(out.ids_restore, ids_from_masked(out.masked)[1])


def test_budget_matches_random_masking_formula():
    for length in (1, 7, 49, 196):
        for ratio in (0.0, 0.15, 0.5, 0.75, 0.9):
            assert int(masked_count_for(torch.tensor([length]), ratio)) == length - int(length * (1 - ratio))


def test_hidden_tokens_are_the_top_perturbed_scores():
    g = seeded(1)
    logits = torch.randn(4, 20, generator=g)
    out = sample(logits, 0.5, g)
    perturbed = logits + out.noise
    for row in range(4):
        hidden = perturbed[row][out.masked[row]]
        visible = perturbed[row][~out.masked[row]]
        assert hidden.min() > visible.max()


def test_same_seed_same_mask_and_noise_replays():
    logits = torch.randn(3, 49)
    a = sample(logits, 0.75, seeded(7))
    b = sample(logits, 0.75, seeded(7))
    c = sample(logits, 0.75, seeded(8))
    assert torch.equal(a.masked, b.masked) and torch.equal(a.noise, b.noise)
    assert not torch.equal(a.masked, c.masked)
    replay = sample(logits, 0.75, noise=a.noise)
    assert torch.equal(replay.masked, a.masked)


def test_zero_logits_give_uniform_random_masks():
    """An untrained masker (zero head) hides every position equally often."""
    counts = torch.zeros(10)
    g = seeded(0)
    for _ in range(400):
        counts += sample(torch.zeros(8, 10), 0.5, g).masked.float().sum(0)
    freq = counts / (400 * 8)  # each position is hidden with probability 5/10
    torch.testing.assert_close(freq, torch.full((10,), 0.5), atol=0.04, rtol=0)


def test_relaxation_agrees_with_hard_mask_and_padding():
    g = seeded(2)
    logits = torch.randn(5, 12, generator=g)
    padding = torch.zeros(5, 12, dtype=torch.bool)
    padding[:, 9:] = True
    out = sample(logits, 0.5, g, hard=False, padding=padding)
    assert torch.equal(out.soft > 0.5, out.masked)
    assert torch.equal(out.soft[padding], torch.zeros(int(padding.sum())))
    direct = relaxed_topk(logits, out.noise, out.masked, padding=padding)
    assert torch.equal(direct, out.soft)


def test_gradient_reaches_masker_parameters_through_the_soft_mask():
    torch.manual_seed(0)
    cfg = LearnedMaskerConfig(in_dim=6, max_tokens=10)
    masker = LearnedMasker(cfg)
    torch.nn.init.normal_(masker.head.weight, std=0.5)
    tokens = torch.randn(4, 10, 6)
    out = sample(masker(tokens), 0.6, seeded(3))
    per_token = torch.rand(4, 10, generator=seeded(4))
    masker_loss(per_token, out.soft).backward()
    for name, p in masker.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert masker.head.weight.grad.abs().sum() > 0
    assert masker.embed.weight.grad.abs().sum() > 0


def test_masker_loss_value_and_gradient_direction():
    """Value: minus the mean hidden-token loss. Gradient: pushes the harder hidden token up, the easier down,
    and ignores visible tokens' losses."""
    logits = torch.zeros(1, 4, requires_grad=True)
    masked = torch.tensor([[True, True, False, False]])
    noise = torch.zeros(1, 4)
    relaxed = relaxed_topk(logits, noise, masked)
    soft = masked.float() + (relaxed - relaxed.detach())
    per_token = torch.tensor([[3.0, 1.0, 100.0, -5.0]])  # visible entries must not matter
    loss = masker_loss(per_token, soft)
    torch.testing.assert_close(loss, torch.tensor(-2.0))
    loss.backward()
    assert logits.grad[0, 0] < 0 < logits.grad[0, 1]  # descent raises token 0's logit, lowers token 1's
    torch.testing.assert_close(logits.grad[0, 2:], torch.zeros(2))


def test_entropy_term_is_zero_at_uniform_and_penalises_collapse():
    uniform = torch.zeros(2, 8)
    peaked = torch.tensor([[20.0] + [0.0] * 7] * 2)
    torch.testing.assert_close(normalized_entropy(uniform), torch.tensor(1.0))
    assert normalized_entropy(peaked) < 0.01
    soft = torch.zeros(2, 8)
    soft[:, :2] = 1.0
    per_token = torch.ones(2, 8)
    base = masker_loss(per_token, soft)
    torch.testing.assert_close(masker_loss(per_token, soft, logits=uniform, entropy_weight=0.3), base)
    assert masker_loss(per_token, soft, logits=peaked, entropy_weight=0.3) > base + 0.29
    with pytest.raises(ValueError, match="logits"):
        masker_loss(per_token, soft, entropy_weight=0.1)


def test_spread_penalty_restores_randomness():
    """The spread term is the mean squared deviation of logits from their row mean (real tokens only), and its
    gradient pulls every logit back toward the row mean."""
    logits = torch.tensor([[2.0, 0.0, -2.0, 100.0]], requires_grad=True)
    padding = torch.tensor([[False, False, False, True]])
    spread = logit_spread(logits, padding)
    torch.testing.assert_close(spread, torch.tensor(8.0 / 3.0))
    spread.backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[4.0 / 3.0, 0.0, -4.0 / 3.0, 0.0]]))
    assert logit_spread(torch.full((2, 5), 3.0)) == 0
    soft, per_token = torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.ones(1, 4)
    plain = masker_loss(per_token, soft, padding=padding)
    with_spread = masker_loss(per_token, soft, logits=logits.detach(), padding=padding, spread_weight=0.5)
    torch.testing.assert_close(with_spread - plain, torch.tensor(4.0 / 3.0))
    with pytest.raises(ValueError, match="logits"):
        masker_loss(per_token, soft, spread_weight=0.1)


def test_learned_masker_finds_the_hard_tokens():
    """Synthetic task: a token's reconstruction loss is its first feature. After a short adversarial training,
    the tokens the masker hides are harder than a random selection."""
    torch.manual_seed(0)
    g = seeded(0)
    B, L, P = 32, 16, 4
    adversary = AdversarialMasking(LearnedMaskerConfig(in_dim=P, max_tokens=L), ratio=0.5)
    optimizer = torch.optim.AdamW(adversary.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(50):
        tokens = torch.randn(B, L, P, generator=g)
        proposal = adversary.propose(tokens, g)
        per_token = tokens[..., 0] + 0.1 * torch.randn(B, L, generator=g)
        masker_step(adversary, optimizer, tokens, per_token, proposal)
    tokens = torch.randn(512, L, P, generator=g)
    hardness = tokens[..., 0]
    learned = hardness[adversary.propose(tokens, g).masked].mean()
    random = hardness[sample(torch.zeros(512, L), 0.5, g).masked].mean()
    assert learned > random + 0.3, (learned, random)


def masker_step(adversary, optimizer, tokens, per_token, proposal):
    """One step of the masker alone on its objective (in MAE it rides the model's own backward)."""
    objective = adversary.loss(tokens, per_token, proposal)
    optimizer.zero_grad(set_to_none=True)
    objective.backward()
    optimizer.step()
    return objective.detach()


def test_adversarial_objective_trains_the_masker_deterministically():
    def run():
        torch.manual_seed(0)
        adversary = AdversarialMasking(LearnedMaskerConfig(in_dim=3, max_tokens=9), ratio=0.75)
        optimizer = torch.optim.AdamW(adversary.parameters(), lr=1e-3, weight_decay=0.0)
        g = seeded(5)
        for _ in range(3):
            tokens = torch.randn(2, 9, 3, generator=g)
            proposal = adversary.propose(tokens, g)
            assert isinstance(proposal, LearnedMaskSample) and proposal.ids_keep is not None
            masker_step(adversary, optimizer, tokens, torch.rand(2, 9, generator=g), proposal)
        return adversary

    a, b = run(), run()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    fresh = AdversarialMasking(LearnedMaskerConfig(in_dim=3, max_tokens=9), ratio=0.75)
    assert not torch.equal(a.masker.head.weight, fresh.masker.head.weight)
    copy.deepcopy(a)  # the fit() budget calibration deep-copies models


def test_gumbel_noise_is_finite_and_standard():
    noise = gumbel_noise((200_000,), seeded(0))
    assert torch.isfinite(noise).all()
    torch.testing.assert_close(noise.mean(), torch.tensor(0.5772), atol=0.01, rtol=0)  # Euler-Mascheroni


def test_config_round_trip_and_errors():
    cfg = LearnedMaskerConfig(in_dim=16, max_tokens=49, dim=32)
    assert LearnedMaskerConfig.from_dict(cfg.to_dict()) == cfg
    assert LearnedMaskerConfig.from_dict({**cfg.to_dict(), "lr": 1e-3}) == cfg  # old runs' masker optimizer lr
    with pytest.raises(ValueError, match="unknown"):
        LearnedMaskerConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="in_dim"):
        LearnedMaskerConfig(in_dim=0, max_tokens=4)
    with pytest.raises(ValueError, match="temperature"):
        LearnedMaskerConfig(in_dim=2, max_tokens=4, temperature=0.0)
    with pytest.raises(ValueError, match="spread_weight"):
        LearnedMaskerConfig(in_dim=2, max_tokens=4, spread_weight=-1.0)
    masker = LearnedMasker(cfg)
    with pytest.raises(ValueError, match="max_tokens"):
        masker(torch.zeros(1, 50, 16))
    with pytest.raises(ValueError, match="tokens"):
        masker(torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="ratio"):
        sample(torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="logits"):
        sample(torch.zeros(4), 0.5)
    with pytest.raises(ValueError, match="ratio"):
        AdversarialMasking(cfg, ratio=1.5)


def test_drives_a_real_mae_through_its_mask_argument():
    """The integration contract: MAE.forward takes the proposal as its mask; the per-token loss trains the masker."""
    from masklab.models.mae import MAE, MAEConfig
    from masklab.tokenizers.patches import patchify

    torch.manual_seed(0)
    mae = MAE(MAEConfig(image_size=(16, 16), patch_size=4, dim=32, depth=1, heads=2, decoder_dim=32,
                        decoder_depth=1, decoder_heads=2, mask_ratio=0.75))  # fmt: skip
    adversary = AdversarialMasking(LearnedMaskerConfig(in_dim=16, max_tokens=16), ratio=0.75)
    before = copy.deepcopy(adversary.masker.state_dict())
    g = seeded(0)
    images = torch.rand(4, 1, 16, 16, generator=g)
    x = mae.normalize(images)
    patches = patchify(x, 4)  # (B, L, P)
    proposal = adversary.propose(patches, g)
    out = mae(images, mask=proposal)
    assert torch.equal(out.masked, proposal.masked) and out.masked.sum(1).tolist() == [12] * 4
    per_token = ((out.pred - mae.patch_targets(x)) ** 2).mean(-1)  # (B, L)
    torch.testing.assert_close(out.loss, per_token[proposal.masked].mean())
    out.loss.backward()  # the MAE's own gradient never reaches the masker
    assert all(p.grad is None for p in adversary.parameters())
    optimizer = torch.optim.AdamW(adversary.parameters(), lr=1e-3)
    masker_step(adversary, optimizer, patches, per_token.detach(), proposal)
    assert any(not torch.equal(before[k], v) for k, v in adversary.masker.state_dict().items())
