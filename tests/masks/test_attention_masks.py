import pytest
import torch

from masklab import masks as M


def loops(q_len, kv_len, fn):
    return torch.tensor([[fn(q, k) for k in range(kv_len)] for q in range(q_len)])


def test_causal_is_strict_upper_triangle():
    assert torch.equal(M.causal().dense(6)[0, 0], torch.ones(6, 6, dtype=torch.bool).triu(1))


def test_causal_with_cache_is_bottom_right_aligned():
    # 2 new queries at positions 4 and 5 over 6 keys.
    assert torch.equal(M.causal().dense(2, 6)[0, 0], loops(2, 6, lambda q, k: k > q + 4))


@pytest.mark.parametrize("window", [1, 2, 5])
def test_sliding_window(window):
    got = M.sliding_window(window).dense(7)[0, 0]
    assert torch.equal(got, loops(7, 7, lambda q, k: k > q or q - k >= window))
    got = M.sliding_window(window, causal=False).dense(7)[0, 0]
    assert torch.equal(got, loops(7, 7, lambda q, k: abs(q - k) >= window))


def test_prefix_lm_int_and_per_row():
    assert torch.equal(M.prefix_lm(3).dense(6)[0, 0], loops(6, 6, lambda q, k: k > q and k >= 3))
    per_row = M.prefix_lm(torch.tensor([0, 2, 6])).dense(6)
    assert per_row.shape == (3, 1, 6, 6)
    for b, p in enumerate([0, 2, 6]):
        assert torch.equal(per_row[b, 0], loops(6, 6, lambda q, k, p=p: k > q and k >= p))


def test_document_block_diagonal():
    doc = torch.tensor([[0, 0, 1, 1, 1, 2], [0, 1, 1, 2, 2, 2]])
    got = M.document(doc).dense(6)
    for b in range(2):
        d = doc[b].tolist()
        assert torch.equal(got[b, 0], loops(6, 6, lambda q, k, d=d: d[q] != d[k]))


def test_key_padding():
    padding = torch.tensor([[False, False, True], [False, True, True]])
    got = M.key_padding(padding).dense(3)
    assert torch.equal(got[:, 0], padding[:, None, :].expand(2, 3, 3))


def test_algebra_is_set_algebra_on_blocked_pairs():
    padding = torch.tensor([[False, False, False, True, True]])
    a, b = M.causal(), M.key_padding(padding)
    assert torch.equal((a | b).dense(5), a.dense(5) | b.dense(5))
    assert torch.equal((a & b).dense(5), a.dense(5) & b.dense(5))
    assert torch.equal((~a).dense(5), ~a.dense(5))
    assert torch.equal(M.full().dense(3), torch.zeros(1, 1, 3, 3, dtype=torch.bool))
    assert "causal" in (a | b).name and "key_padding" in (a | b).name


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="window"):
        M.sliding_window(0)
    with pytest.raises(ValueError, match="prefix_len"):
        M.prefix_lm(-1)
    with pytest.raises(ValueError, match="padding"):
        M.key_padding(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="doc_ids"):
        M.document(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch sizes"):
        _ = M.key_padding(torch.zeros(2, 3, dtype=torch.bool)) | M.prefix_lm(torch.tensor([1, 2, 3]))
