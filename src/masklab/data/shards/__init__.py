"""Prepared shards: a text corpus tokenised once into memory-mapped files (see :mod:`.format`, :mod:`.prepare`)."""

from masklab.data.shards.datasets import ShardBlocksData, TokenSpan
from masklab.data.shards.format import PreparedCorpus, ShardError, is_prepared
from masklab.data.shards.run_data import check_resume_corpus, corpus_identity, prepared_for_run

__all__ = [
    "PreparedCorpus",
    "ShardBlocksData",
    "ShardError",
    "TokenSpan",
    "check_resume_corpus",
    "corpus_identity",
    "is_prepared",
    "prepared_for_run",
]
