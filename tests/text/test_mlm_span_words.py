"""MLM ``masking="span"``: SpanBERT's whole-word spans with one 80/10/10 draw per span (``span_unit="word"``,
new configs), and the original token-level spans with a draw per token for configs saved before the field
(``span_unit="token"``: such a run resumes with the masks and corruption it was trained with)."""

from __future__ import annotations

import math

import pytest
import torch

from masklab.models.mlm import MLMConfig
from masklab.models.mlm.bert import BertConfig
from masklab.models.mlm.model import choose_masked, corrupt

VOCAB, PAD, UNK, CLS, SEP, MASK = 500, 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)


def _cfg(**kw) -> MLMConfig:
    bert = BertConfig(vocab_size=VOCAB, dim=32, depth=1, heads=2)
    return MLMConfig(bert=bert, mask_id=MASK, special_ids=SPECIAL, **{"masking": "span", **kw})


def _batch(g: torch.Generator, batch: int = 64, length: int = 96):
    """[CLS] tokens [SEP] pad..., random lengths; words of geometric(0.5) pieces (as tests/text/test_mlm_masking)."""
    ids = torch.randint(len(SPECIAL), VOCAB, (batch, length), generator=g)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    padding = torch.arange(length)[None, :] >= lengths[:, None]
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    ids[padding] = PAD
    starts = torch.rand(batch, length, generator=g) < 0.5
    starts[:, 0] = True
    word_ids = (starts.cumsum(1) - 1).masked_fill(padding | (ids == CLS) | (ids == SEP), -1)
    return ids, padding, word_ids


def _runs(row: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a bool (L,) row, end exclusive."""
    edges = torch.diff(torch.nn.functional.pad(row.int(), (1, 1)))
    starts, ends = torch.nonzero(edges == 1).flatten().tolist(), torch.nonzero(edges == -1).flatten().tolist()
    return list(zip(starts, ends, strict=True))


# ------------------------------------------------------------------------------------- old saved configs
# A pretrain_mlm run's config.json["model"] as the code before span_unit saved it (masking "span").
OLD_SAVED = {
    "kind": "mlm", "mask_id": 4, "special_ids": [0, 1, 2, 3, 4], "mask_ratio": 0.3, "replace_mask": 0.8,
    "replace_random": 0.1, "masking": "span", "span_p": 0.2, "span_max": 10, "task": "mlm", "num_labels": 0,
    "pooling": "mean", "classifier_dropout": 0.1, "tie_embeddings": True,
    "bert": {"vocab_size": 50, "dim": 8, "depth": 1, "heads": 1, "intermediate": 32, "max_len": 512,
             "type_vocab_size": 2, "pad_id": 0, "norm_first": False, "norm_eps": 1e-12, "dropout": 0.1,
             "attn_dropout": 0.1, "positions": "absolute"},
}  # fmt: skip
IDS = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 3, 0],
                    [2, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 3],
                    [2, 5, 6, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])  # fmt: skip
WORDS = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, 4, 5, 5, 6, 7, 8, -1, -1],
                      [-1, 0, 1, 1, 2, 3, 3, 4, 5, 6, 6, 6, 7, 8, 9, -1],
                      [-1, 0, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1]])  # fmt: skip
# choose_masked + corrupt, three steps from Generator().manual_seed(7), computed by the code before span_unit
# (commit f7d559c): spans cut through words (row 0: word 2), and one span mixes [MASK] with a random token.
OLD_STEPS = [
    ([[0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0],
      [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
     [[2, 10, 11, 12, 4, 4, 15, 16, 17, 4, 4, 20, 21, 22, 3, 0], [2, 30, 31, 32, 33, 34, 35, 36, 37, 38, 4, 22, 41,
      4, 43, 3], [2, 5, 6, 4, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]),
    ([[0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
      [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
     [[2, 10, 11, 12, 13, 14, 15, 16, 4, 4, 4, 4, 21, 22, 3, 0], [2, 30, 31, 32, 33, 34, 35, 36, 4, 4, 39, 4, 41, 42,
      43, 3], [2, 5, 4, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]),
    ([[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0],
      [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
     [[2, 10, 11, 12, 4, 14, 15, 16, 17, 18, 19, 4, 4, 4, 3, 0], [2, 30, 31, 32, 33, 34, 35, 36, 37, 4, 39, 40, 41,
      4, 4, 3], [2, 5, 6, 7, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]),
]  # fmt: skip


def test_a_config_saved_before_span_unit_keeps_token_spans():
    config = MLMConfig.from_dict(OLD_SAVED)
    assert config.span_unit == "token"
    # It saves as it was saved, so check_resume's comparison with the run's config.json still matches.
    assert config.to_dict() == {k: v for k, v in OLD_SAVED.items() if k != "kind"}
    g = torch.Generator().manual_seed(7)
    for masked, inputs in OLD_STEPS:
        got = choose_masked(config, IDS, IDS == 0, WORDS, g)
        assert got.int().tolist() == masked
        assert corrupt(config, IDS, got, g).tolist() == inputs


def test_a_config_saved_before_span_unit_replays_a_larger_batch():
    # Fingerprints of one step on tests/text/test_mlm_masking's batch, by the code before span_unit (f7d559c).
    saved = {**_cfg().to_dict(), "kind": "mlm"}
    del saved["span_unit"]
    config = MLMConfig.from_dict(saved)
    g = torch.Generator().manual_seed(11)
    ids, padding, word_ids = _batch(g)
    masked = choose_masked(config, ids, padding, word_ids, g)
    inputs = corrupt(config, ids, masked, g)
    w = torch.arange(ids.numel()).reshape(ids.shape)
    got = [int(masked.sum()), int((masked * w).sum()), int(inputs.sum()), int((inputs * w).sum())]
    assert got == [694, 2091225, 1027506, 3074114311]


def test_new_configs_default_to_word_spans():
    assert _cfg().span_unit == "word"
    preset = {"bert": BertConfig(vocab_size=VOCAB, dim=32, depth=1, heads=2), "mask_id": MASK, "masking": "span"}
    assert MLMConfig.from_dict(preset).span_unit == "word"  # a partial dict (presets, the CLI) is a new config
    assert _cfg().to_dict()["span_unit"] == "word" and MLMConfig.from_dict(_cfg().to_dict()) == _cfg()
    # Other maskings don't use the field: an old saved bernoulli config rebuilds today's default and saves as before.
    bernoulli = {k: v for k, v in _cfg(masking="bernoulli").to_dict().items() if k != "span_unit"}
    assert MLMConfig.from_dict(bernoulli) == MLMConfig.from_dict({**bernoulli})
    assert MLMConfig.from_dict(bernoulli).to_dict() == bernoulli
    with pytest.raises(ValueError, match="span_unit"):
        _cfg(span_unit="piece")


# ------------------------------------------------------------------------------------- new configs (SpanBERT)
def test_word_spans_hide_whole_words_at_the_rate():
    cfg, g = _cfg(), torch.Generator().manual_seed(3)
    hidden = eligible = partial = touched = 0
    for _ in range(10):
        ids, padding, word_ids = _batch(g)
        masked = choose_masked(cfg, ids, padding, word_ids, g)
        assert not bool((masked & (word_ids < 0)).any())
        for b in range(ids.shape[0]):
            for w in set(word_ids[b][masked[b]].tolist()):
                touched += 1
                partial += not bool(masked[b][word_ids[b] == w].all())
            n = int((word_ids[b] >= 0).sum())
            budget, count = max(1, round(0.15 * n)), int(masked[b].sum())
            longest = int(torch.bincount(word_ids[b][word_ids[b] >= 0]).max())
            # the nearer whole word to the budget: off by at most half the longest word (the first word of a
            # row is always taken, whatever its length)
            assert count >= 1 and abs(count - budget) <= max(longest // 2, longest - budget)
        hidden += int(masked.sum())
        eligible += int((word_ids >= 0).sum())
    assert partial == 0 and touched > 1000
    # Each row stops at the nearer whole word to its budget: 15% on average (5 binomial standard deviations).
    assert abs(hidden / eligible - 0.15) <= 5 * math.sqrt(0.15 * 0.85 / eligible)


def test_replacement_is_one_draw_per_span():
    cfg, g = _cfg(), torch.Generator().manual_seed(5)
    ids, padding, word_ids = _batch(g, batch=256)
    masked = choose_masked(cfg, ids, padding, word_ids, g)
    state = g.get_state()
    inputs = corrupt(cfg, ids, masked, g)
    # Reference: the same draws as corrupt (u per position, a random id per position), u of the span's first token.
    g.set_state(state)
    u = torch.rand(ids.shape, generator=g)
    pool = torch.tensor([i for i in range(VOCAB) if i not in SPECIAL])
    random_ids = pool[torch.randint(len(pool), ids.shape, generator=g)]
    expected = ids.clone()
    kinds = [0, 0, 0]  # spans all [MASK] / all random / all kept
    for b in range(ids.shape[0]):
        for start, end in _runs(masked[b]):
            r = float(u[b, start])
            kind = 0 if r < 0.8 else 1 if r < 0.9 else 2
            kinds[kind] += 1
            if kind == 0:
                expected[b, start:end] = MASK
            elif kind == 1:
                expected[b, start:end] = random_ids[b, start:end]
            treated = inputs[b, start:end]
            assert bool((treated == MASK).all()) or not bool((treated == MASK).any())  # no mixed span
    assert torch.equal(inputs, expected)
    n = sum(kinds)
    for share, p in zip(kinds, (0.8, 0.1, 0.1), strict=True):
        assert abs(share / n - p) <= 5 * math.sqrt(p * (1 - p) / n)


def test_short_rows_hide_at_least_one_token_in_new_configs_only():
    ids = torch.tensor([[CLS, 10, 11, SEP, PAD], [CLS, 12, SEP, PAD, PAD]])
    padding, words = ids == PAD, torch.tensor([[-1, 0, 1, -1, -1], [-1, 0, -1, -1, -1]])
    new = choose_masked(_cfg(), ids, padding, words, torch.Generator().manual_seed(0))
    assert new.sum(1).tolist() == [1, 1]
    old = MLMConfig.from_dict({k: v for k, v in _cfg().to_dict().items() if k != "span_unit"})
    assert choose_masked(old, ids, padding, words, torch.Generator().manual_seed(0)).sum().item() == 0


def test_without_word_ids_spans_are_tokens_with_one_draw_per_span():
    cfg, g = _cfg(), torch.Generator().manual_seed(8)
    ids, padding, _ = _batch(g)
    masked = choose_masked(cfg, ids, padding, None, g)
    inputs = corrupt(cfg, ids, masked, g)
    assert not bool((masked & (padding | torch.isin(ids, torch.tensor(SPECIAL)))).any())
    for b in range(ids.shape[0]):
        for start, end in _runs(masked[b]):
            treated = inputs[b, start:end]
            assert bool((treated == MASK).all()) or not bool((treated == MASK).any())
