import numpy as np
import pytest
import torch

from masklab import masks as M


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    hidden = torch.tensor([[False, True, False, True, False], [True] * 5, [False] * 5])
    return x, hidden


def test_reductions_match_numpy(data):
    x, hidden = data
    xn, hn = x.numpy(), hidden.numpy()
    for b in range(3):
        keep = xn[b][~hn[b]]
        want_sum = keep.sum(0) if len(keep) else np.zeros(4)
        want_mean = keep.mean(0) if len(keep) else np.zeros(4)
        want_max = keep.max(0) if len(keep) else np.zeros(4)
        np.testing.assert_allclose(M.visible_sum(x, hidden, dim=1)[b].numpy(), want_sum)
        np.testing.assert_allclose(M.visible_mean(x, hidden, dim=1)[b].numpy(), want_mean)
        np.testing.assert_allclose(M.visible_max(x, hidden, dim=1)[b].numpy(), want_max)
    assert torch.equal(M.visible_count(x, hidden, dim=1)[:, 0], torch.tensor([3.0, 0.0, 5.0], dtype=x.dtype))
    assert torch.equal(M.apply_mask(x, hidden)[0, 1], torch.zeros(4, dtype=x.dtype))


def test_masked_softmax_and_normalize(data):
    x, hidden = data
    scores = x[..., 0]  # (3, 5)
    p = M.visible_softmax(scores, hidden, dim=-1)
    assert bool((p[hidden] == 0).all())
    torch.testing.assert_close(p.sum(-1), torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype))
    want = np.exp(scores[0].numpy()[[0, 2, 4]])
    np.testing.assert_allclose(p[0, [0, 2, 4]].numpy(), want / want.sum())
    w = M.visible_normalize(scores.abs(), hidden)
    torch.testing.assert_close(w.sum(-1), torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype))
    assert not bool(torch.isnan(M.visible_softmax(scores, torch.ones_like(hidden))).any())


def test_masked_loss_counts_masked_not_padding():
    per_token = torch.arange(6.0).view(2, 3)
    masked = torch.tensor([[True, False, True], [True, True, False]])
    padding = torch.tensor([[False, False, False], [False, True, True]])
    assert float(M.loss_on_masked(per_token, masked, padding)) == pytest.approx((0 + 2 + 3) / 3)
    per_elem = per_token[..., None].expand(2, 3, 4)
    assert float(M.loss_on_masked(per_elem, masked)) == pytest.approx((0 + 2 + 3 + 4) / 4)
    w = torch.ones(2, 3, requires_grad=True)
    nothing = M.loss_on_masked(w, torch.zeros(2, 3, dtype=torch.bool))
    nothing.backward()
    assert float(nothing.detach()) == 0.0 and torch.equal(w.grad, torch.zeros(2, 3))


def test_padding_lengths_and_pooling():
    lengths = torch.tensor([2, 4, 1])
    right = M.padding_from_lengths(lengths, 5)
    left = M.padding_from_lengths(lengths, 5, left=True)
    assert right.tolist()[0] == [False, False, True, True, True]
    assert left.tolist()[0] == [True, True, True, False, False]
    assert torch.equal(M.lengths_from_padding(right), lengths)
    assert torch.equal(M.lengths_from_padding(left), lengths)
    x = torch.arange(15.0).view(3, 5, 1)
    assert M.last_token(x, right)[:, 0].tolist() == [1.0, 8.0, 10.0]
    assert M.last_token(x, left)[:, 0].tolist() == [4.0, 9.0, 14.0]
    assert M.first_token(x, left)[:, 0].tolist() == [3.0, 6.0, 14.0]
    assert M.mean_pool(x, right)[:, 0].tolist() == [0.5, 6.5, 10.0]
    assert M.max_pool(x, left)[:, 0].tolist() == [4.0, 9.0, 14.0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="masked"):
        M.visible_mean(torch.zeros(2, 3), torch.zeros(2, 3), dim=1)
    with pytest.raises(ValueError, match="leading dims"):
        M.visible_mean(torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.bool), dim=1)
    with pytest.raises(ValueError, match="max_len"):
        M.padding_from_lengths(torch.tensor([4]), 2)
    with pytest.raises(ValueError, match="lengths"):
        M.padding_from_lengths(torch.tensor([1.5]))
