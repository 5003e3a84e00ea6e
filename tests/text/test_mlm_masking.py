"""MLM masking statistics: rate, the 80/10/10 split (also against transformers' collator), whole words, spans.

Tolerances are 5 binomial standard deviations of the measured proportion, not hand-picked constants.
"""

import math

import pytest
import torch

from masklab.models.mlm import MLMConfig
from masklab.models.mlm.bert import BertConfig
from masklab.models.mlm.model import choose_masked, corrupt

VOCAB, PAD, UNK, CLS, SEP, MASK = 500, 0, 1, 2, 3, 4
SPECIAL = (PAD, UNK, CLS, SEP, MASK)


def _cfg(**kw) -> MLMConfig:
    return MLMConfig(
        bert=BertConfig(vocab_size=VOCAB, dim=32, depth=1, heads=2), mask_id=MASK, special_ids=SPECIAL, **kw
    )


def _batch(g: torch.Generator, batch: int = 64, length: int = 96):
    """[CLS] tokens [SEP] pad..., random lengths; word ids: words of geometric(0.5) pieces."""
    ids = torch.randint(len(SPECIAL), VOCAB, (batch, length), generator=g)
    lengths = torch.randint(length // 2, length + 1, (batch,), generator=g)
    pos = torch.arange(length)[None, :]
    padding = pos >= lengths[:, None]
    ids[:, 0] = CLS
    ids[torch.arange(batch), lengths - 1] = SEP
    ids[padding] = PAD
    starts = torch.rand(batch, length, generator=g) < 0.5  # a new word starts here: words of ~2 pieces
    starts[:, 0] = True
    word_ids = (starts.cumsum(1) - 1).masked_fill(padding | (ids == CLS) | (ids == SEP), -1)
    return ids, padding, word_ids


def _within(measured: float, expected: float, n: int) -> bool:
    return abs(measured - expected) <= 5 * math.sqrt(expected * (1 - expected) / n)


def _split_stats(ids, inputs, masked):
    n = int(masked.sum())
    to_mask = float(((inputs == MASK) & masked).sum()) / n
    changed = float(((inputs != MASK) & (inputs != ids) & masked).sum()) / n
    kept = float(((inputs == ids) & masked).sum()) / n
    return n, to_mask, changed, kept


@pytest.mark.parametrize("masking", ["bernoulli", "random"])
def test_rate_and_80_10_10_split(masking):
    cfg, g = _cfg(masking=masking), torch.Generator().manual_seed(0)
    eligible = masked_total = 0
    stats = []
    for _ in range(20):
        ids, padding, word_ids = _batch(g)
        masked = choose_masked(cfg, ids, padding, word_ids, g)
        special = torch.isin(ids, torch.tensor(SPECIAL))
        assert not bool((masked & (padding | special)).any())  # never padding or special tokens
        inputs = corrupt(cfg, ids, masked, g)
        assert torch.equal(inputs[~masked], ids[~masked])  # only masked positions change
        assert not bool(torch.isin(inputs[masked & (inputs != MASK)], torch.tensor(SPECIAL)).any())
        eligible += int((~padding & ~special).sum())
        masked_total += int(masked.sum())
        stats.append((ids, inputs, masked))
    if masking == "bernoulli":  # "random" hides an exact count per row: see the next test
        assert _within(masked_total / eligible, 0.15, eligible)
    ids, inputs, masked = (torch.cat(t) for t in zip(*stats, strict=True))
    n, to_mask, changed, kept = _split_stats(ids, inputs, masked)
    same_draw = 1 / (VOCAB - len(SPECIAL))  # a random replacement can redraw the original token
    assert _within(to_mask, 0.8, n)
    assert _within(changed, 0.1 * (1 - same_draw), n)
    assert _within(kept, 0.1 + 0.1 * same_draw, n)


def test_exact_count_masking_hides_the_same_share_of_every_row():
    cfg, g = _cfg(masking="random"), torch.Generator().manual_seed(1)
    ids, padding, word_ids = _batch(g)
    masked = choose_masked(cfg, ids, padding, word_ids, g)
    eligible = (~padding & ~torch.isin(ids, torch.tensor(SPECIAL))).sum(1)
    expected = eligible - (eligible * (1 - 0.15)).long()  # keep int(n * 0.85), as MAE/BERT count
    assert torch.equal(masked.sum(1), expected)


def test_matches_transformers_collator_statistics():
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(VOCAB)}
    for token, i in zip(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], SPECIAL, strict=True):
        vocab[token] = i
        del vocab[f"t{i}"]
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    hf_tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    collator = transformers.DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0)
    cfg, g = _cfg(), torch.Generator().manual_seed(2)
    ours, theirs, eligible = [], [], 0
    for _ in range(20):
        ids, padding, word_ids = _batch(g)
        special = torch.isin(ids, torch.tensor(SPECIAL))
        hf_inputs, labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=special.long())
        theirs.append((ids, hf_inputs, labels != -100))
        masked = choose_masked(cfg, ids, padding, word_ids, g)
        ours.append((ids, corrupt(cfg, ids, masked, g), masked))
        eligible += int((~special).sum())
    for name, rows in (("masklab", ours), ("transformers", theirs)):
        ids, inputs, masked = (torch.cat(t) for t in zip(*rows, strict=True))
        n, to_mask, changed, kept = _split_stats(ids, inputs, masked)
        assert _within(n / eligible, 0.15, eligible), name
        assert _within(to_mask, 0.8, n), name
        # transformers draws random tokens from the whole vocabulary (specials too); both stay within 5 sigma.
        assert _within(changed, 0.1, n) and _within(kept, 0.1, n), name


def test_whole_word_masking_hides_every_piece_of_a_chosen_word():
    cfg, g = _cfg(masking="whole_word"), torch.Generator().manual_seed(3)
    n_masked = n_target = 0
    for _ in range(10):
        ids, padding, word_ids = _batch(g)
        masked = choose_masked(cfg, ids, padding, word_ids, g)
        for row in range(ids.shape[0]):
            words = word_ids[row]
            chosen = set(words[masked[row]].tolist())
            assert -1 not in chosen
            for w in chosen:
                assert bool(masked[row][words == w].all())  # all pieces of a chosen word
            assert not bool(masked[row][words == -1].any())
        in_words = (word_ids >= 0).sum(1)
        target = torch.clamp(torch.round(0.15 * in_words), min=1)  # BERT: max(1, round(n * rate)) per row
        assert bool((masked.sum(1) <= target).all())  # a word that would overshoot is skipped
        n_masked += int(masked.sum())
        n_target += int(target.sum())
    # Skipping overshooting words leaves each row at most a word short of its target.
    assert n_masked >= 0.9 * n_target


def test_span_masking_makes_runs_and_skips_specials():
    cfg, g = _cfg(masking="span"), torch.Generator().manual_seed(4)
    ids, padding, word_ids = _batch(g)
    masked = choose_masked(cfg, ids, padding, word_ids, g)
    assert not bool((masked & (padding | torch.isin(ids, torch.tensor(SPECIAL)))).any())
    starts = masked & ~torch.nn.functional.pad(masked, (1, 0))[:, :-1]
    mean_span = float(masked.sum()) / float(starts.sum())
    assert mean_span > 2.0  # SpanBERT's geometric(0.2) truncated at 10 has mean 3.8 (cut at row ends/budget)


def test_masking_replays_from_the_seed():
    cfg = _cfg(masking="bernoulli")
    ids, padding, word_ids = _batch(torch.Generator().manual_seed(5))
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(9)
        masked = choose_masked(cfg, ids, padding, word_ids, g)
        runs.append((masked, corrupt(cfg, ids, masked, g)))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
