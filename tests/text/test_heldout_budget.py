"""The held-out score after `pretrain mlm` stays inside a --minutes budget: past the deadline no further batch
is started, and eval.json says how many held-out rows were scored (a 30 s budget ran 37 s)."""

import time

import torch

from masklab.data.text import TokenBlocks
from masklab.models.mlm import BertForMLM
from masklab.recipes.mlm import heldout_accuracy


def _blocks(n: int = 150, length: int = 12) -> TokenBlocks:
    ids = torch.randint(4, 100, (n, length), generator=torch.Generator().manual_seed(0))
    return TokenBlocks(ids, torch.arange(length).expand(n, -1).clone(), torch.zeros(n, length, dtype=torch.bool))


def test_a_deadline_stops_the_held_out_score_after_whole_batches_and_says_so():
    torch.manual_seed(0)
    model = BertForMLM.from_preset("bert-tiny", vocab_size=100, mask_id=3, special_ids=(0, 1, 2, 3))
    blocks = _blocks()
    whole = heldout_accuracy(model, blocks, batch_size=64)
    assert (whole["rows"], whole["rows_held_out"]) == (150, 150)
    cut = heldout_accuracy(model, blocks, batch_size=64, until=time.monotonic() - 1)  # already past
    assert (cut["rows"], cut["rows_held_out"]) == (64, 150)  # one batch is always scored
    first = heldout_accuracy(model, TokenBlocks(blocks.ids[:64], blocks.word_ids[:64], blocks.padding[:64]))
    assert cut["mlm_top1"] == first["mlm_top1"] and cut["masked_tokens"] == first["masked_tokens"]
