"""``fit`` datasets over a :class:`~masklab.data.shards.format.PreparedCorpus` (nothing loaded up front).

:class:`ShardBlocksData` gives BERT rows exactly as :func:`masklab.data.text.pack_sequences` +
:class:`masklab.data.text.TextBlocksData` would build them from the same documents; :class:`TokenSpan` is a
position range of the stream that :class:`masklab.data.lm.LMWindows` reads windows from.

Shape legend: ``B`` batch, ``T`` sequence length.
"""

from __future__ import annotations

import numpy as np
import torch

from masklab.data.shards.format import PreparedCorpus


class TokenSpan:
    """Positions ``[start, stop)`` of a prepared corpus's token stream (a split by position)."""

    def __init__(self, corpus: PreparedCorpus, start: int = 0, stop: int | None = None) -> None:
        stop = len(corpus) if stop is None else stop
        if not 0 <= start <= stop <= len(corpus):
            raise ValueError(f"span [{start}, {stop}) is outside the stream of {len(corpus)} tokens")
        self.corpus, self.start, self.stop = corpus, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, start: int, stop: int) -> np.ndarray:
        """Ids at span positions ``[start, stop)`` as int64."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"[{start}, {stop}) is outside a span of {len(self)} tokens")
        return self.corpus.read(self.start + start, self.start + stop)[0]

    def split(self, val_fraction: float) -> tuple[TokenSpan, TokenSpan]:
        """First ``1 - val_fraction`` for training, the end for validation (as :func:`split_by_position`)."""
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        cut = self.start + len(self) - round(len(self) * val_fraction)
        return TokenSpan(self.corpus, self.start, cut), TokenSpan(self.corpus, cut, self.stop)


class ShardBlocksData:
    """Rows of ``seq_len`` tokens, ``[CLS] chunk [SEP]`` framed, read from the shards on demand.

    Row ``r`` holds stream positions ``[r * body, (r + 1) * body)`` with ``body = seq_len - 2``; only the last
    row of the stream is padded. ``rows`` selects a range of rows (a held-out split by position).
    ``get_batch`` returns ``{"ids", "word_ids"}`` long ``(B, T')`` and ``{"padding"}`` bool ``(B, T')``
    (True = padded) cut to the longest real row in the batch, like :class:`masklab.data.text.TextBlocksData`.
    """

    def __init__(
        self,
        corpus: PreparedCorpus,
        seq_len: int,
        *,
        cls_id: int,
        sep_id: int,
        pad_id: int,
        rows: tuple[int, int] | None = None,
    ) -> None:
        if seq_len < 3:
            raise ValueError(f"--seq-len must be >= 3 to hold a token besides the framing, got {seq_len}")
        self.corpus, self.seq_len = corpus, seq_len
        self.cls_id, self.sep_id, self.pad_id = cls_id, sep_id, pad_id
        self.body = seq_len - 2
        total = -(-len(corpus) // self.body)
        self.first, self.stop = rows if rows is not None else (0, total)
        if not 0 <= self.first <= self.stop <= total:
            raise ValueError(f"rows {rows} are outside the {total} rows of the corpus")

    @property
    def total_rows(self) -> int:
        return -(-len(self.corpus) // self.body)

    def split(self, holdout: float) -> tuple[ShardBlocksData, ShardBlocksData]:
        """(train, held-out): the last ``round(rows * holdout)`` rows are held out (a split by position)."""
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout fraction must be in [0, 1), got {holdout}")
        cut = self.stop - round(len(self) * holdout)
        kwargs = dict(cls_id=self.cls_id, sep_id=self.sep_id, pad_id=self.pad_id)
        return (
            ShardBlocksData(self.corpus, self.seq_len, rows=(self.first, cut), **kwargs),
            ShardBlocksData(self.corpus, self.seq_len, rows=(cut, self.stop), **kwargs),
        )

    def __len__(self) -> int:
        return self.stop - self.first

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        from masklab.data.text import frame_rows

        n, body = len(indices), self.body
        ids = np.full((n, body), self.pad_id, dtype=np.int64)
        words = np.full((n, body), -1, dtype=np.int64)
        padding = np.ones((n, body), dtype=bool)
        for i, row in enumerate(indices.tolist()):
            if not 0 <= row < len(self):
                raise IndexError(f"row {row} is outside the {len(self)} rows")
            start = (self.first + row) * body
            stop = min(start + body, len(self.corpus))
            row_ids, row_words = self.corpus.read(start, stop, words=True)
            ids[i, : stop - start], words[i, : stop - start] = row_ids, row_words
            padding[i, : stop - start] = False
        ids, words, padding = frame_rows(ids, words, padding, self.cls_id, self.sep_id, self.pad_id)
        width = int((~padding).sum(axis=1).max())
        return {
            "ids": torch.from_numpy(np.ascontiguousarray(ids[:, :width])),
            "word_ids": torch.from_numpy(np.ascontiguousarray(words[:, :width])),
            "padding": torch.from_numpy(np.ascontiguousarray(padding[:, :width])),
        }
