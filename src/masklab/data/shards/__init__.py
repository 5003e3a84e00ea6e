"""Prepared shards: a text corpus tokenised once into memory-mapped files (see :mod:`.format`, :mod:`.prepare`)."""

from masklab.data.shards.format import PreparedCorpus, ShardError, is_prepared

__all__ = ["PreparedCorpus", "ShardError", "is_prepared"]
