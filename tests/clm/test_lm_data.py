"""Token streams, the positional train/val split, windows, and the evaluation helper."""

import math

import pytest
import torch

from masklab.data.lm import LMWindows, split_by_position, token_stream
from masklab.models.clm import GPT, GPTConfig, evaluate_nll


def test_windows_are_contiguous_slices():
    tokens = torch.arange(100)
    data = LMWindows(tokens, context=8)
    assert len(data) == 100 - 8  # every start whose window of 9 fits
    batch = data.get_batch(torch.tensor([0, 5, len(data) - 1]))["ids"]
    assert torch.equal(batch, torch.stack([tokens[0:9], tokens[5:14], tokens[91:100]]))
    tiles = LMWindows(tokens, context=8, stride=8)
    assert len(tiles) == 12 and torch.equal(tiles.get_batch(torch.tensor([1]))["ids"][0], tokens[8:17])


def test_split_by_position_keeps_order():
    tokens = torch.arange(50)
    train, val = split_by_position(tokens, 0.1)
    assert torch.equal(train, tokens[:45]) and torch.equal(val, tokens[45:])
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_position(tokens, 1.0)


def test_window_errors():
    with pytest.raises(ValueError, match="fewer than one window"):
        LMWindows(torch.arange(5), context=8)
    with pytest.raises(ValueError, match="long"):
        LMWindows(torch.arange(20.0), context=4)


def test_token_stream_separates_documents():
    tokenizers = pytest.importorskip("masklab.tokenizers.text")
    tok = tokenizers.TextTokenizer.train(["ab c", "cab"], "char", lowercase=False)
    stream = token_stream(tok, ["ab", "c"], separator=tok.sep_id)
    want = [tok.token_to_id("a"), tok.token_to_id("b"), tok.sep_id, tok.token_to_id("c")]
    assert stream.tolist() == want


def test_evaluate_nll_is_mean_cross_entropy_over_tiles():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, context=6, dim=16, depth=1, heads=2))
    tokens = torch.randint(0, 13, (40,), generator=torch.Generator().manual_seed(1))
    data = LMWindows(tokens, context=6, stride=6)
    scores = evaluate_nll(model, data, batch_size=2)
    ids = data.get_batch(torch.arange(len(data)))["ids"]
    with torch.no_grad():
        logits = model(ids[:, :-1])
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 13), ids[:, 1:].reshape(-1)).item()
    assert scores["tokens"] == ids[:, 1:].numel() and model.training
    assert math.isclose(scores["loss"], want, rel_tol=1e-5)
    assert math.isclose(scores["perplexity"], math.exp(want), rel_tol=1e-5)
