"""The causal mask on the whole model: no output position depends on a later input position."""

import torch

from masklab.models.clm import GPT, GPTConfig


def make_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=31, context=16, dim=32, depth=2, heads=4))


def test_no_gradient_from_future_tokens():
    model = make_model().train()  # training mode: the path fit() uses (dropout is 0 in this config)
    ids = torch.randint(0, 31, (2, 12), generator=torch.Generator().manual_seed(1))
    embeddings = {}

    def keep(module, inputs, output):  # make the token embeddings a leaf we can read gradients from
        output.retain_grad()
        embeddings["x"] = output

    handle = model.tok_embed.register_forward_hook(keep)
    try:
        for t in range(ids.shape[1]):
            model.zero_grad()
            logits = model(ids)  # (B, T, V)
            logits[:, t].square().sum().backward()
            grad = embeddings["x"].grad  # (B, T, D)
            assert torch.count_nonzero(grad[:, t + 1 :]) == 0, f"position {t} received gradient from the future"
            assert (grad[:, : t + 1].abs().sum(dim=-1) > 0).all(), f"position {t} ignores its own past"
    finally:
        handle.remove()


def test_changing_future_tokens_leaves_past_logits_unchanged():
    model = make_model().eval()
    ids = torch.randint(0, 31, (3, 16), generator=torch.Generator().manual_seed(2))
    changed = ids.clone()
    changed[:, 9:] = (changed[:, 9:] + 1) % 31
    with torch.no_grad():
        a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9], atol=0, rtol=0)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_training_loss_is_next_token_cross_entropy():
    model = make_model().eval()
    ids = torch.randint(0, 31, (2, 9), generator=torch.Generator().manual_seed(3))
    logits = model(ids[:, :-1])
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 31), ids[:, 1:].reshape(-1))
    torch.testing.assert_close(model.training_loss({"ids": ids}).loss, want)
    # A padded target is not scored: right padding changes nothing for the real positions' loss.
    padded = torch.cat([ids, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    padding = torch.zeros(2, 12, dtype=torch.bool)
    padding[:, 9:] = True
    torch.testing.assert_close(model.training_loss({"ids": padded, "padding": padding}).loss, want)
