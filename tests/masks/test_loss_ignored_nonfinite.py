"""``loss_on_masked`` counts only masked, non-padded positions, also when an ignored one holds inf or NaN
(``inf * 0`` is NaN: the weighted sum returned NaN)."""

import torch

from masklab.masks.ops import loss_on_masked


def test_an_ignored_position_holding_inf_or_nan_does_not_count():
    per_token = torch.tensor([[0.5, 1.5, float("inf")], [2.0, 1.0, float("nan")]])
    masked = torch.tensor([[True, True, False], [True, False, False]])
    padding = torch.tensor([[False, False, True], [False, False, True]])
    assert loss_on_masked(per_token, masked, padding).item() == torch.tensor(4.0 / 3).item()
    per_dim = torch.tensor([[[1.0, 3.0], [float("inf"), 0.0]]])  # (B, L, D): the mean over D, then the mask
    assert loss_on_masked(per_dim, torch.tensor([[True, False]])).item() == 2.0


def test_gradients_reach_the_counted_positions_only():
    per_token = torch.tensor([[0.5, 1.5, 3.0]], requires_grad=True)
    loss_on_masked(per_token, torch.tensor([[True, False, True]])).backward()
    assert per_token.grad.tolist() == [[0.5, 0.0, 0.5]]
