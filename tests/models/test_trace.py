"""``torch.jit.trace`` and ``torch.export.export`` work on every model family, with outputs equal to eager.

Each family is wrapped as a plain tensor function (tensors in, tensors out) of its main forward pass: MAE
reconstruction, BERT-MLM and GPT logits, TableMAE cell predictions, PatchTST patch predictions, the series
classifier's logits and the segmenter's per-pixel logits. What depends on the data's values rather than its
shape is computed eagerly and passed in, as a compiled training step takes it: MAE's mask noise, the series
mask, and the TableMAE's packing of visible cells (its width is the largest visible count of a row).
Each model is traced and exported with the inputs it is then checked on, plus a second input of the same
shape (another padding / mask pattern) that the traced or exported program must also get right.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from masklab.data.series import SeriesBatch
from masklab.models.table.model import VisibleLayout, visible_layout
from masklab.tokenizers.table import ColumnSpec, TableSchema

SCHEMA = TableSchema(
    (
        ColumnSpec("a", "numeric", 1.0, 2.0),
        ColumnSpec("b", "categorical", categories=("x", "y", "z")),
        ColumnSpec("c", "numeric"),
        ColumnSpec("e", "categorical", categories=("u", "v")),
    )
)


class MAEPred(nn.Module):
    """MAE ``(images, noise) -> pred (B, L, P)``: the noise replays the random mask."""

    def __init__(self) -> None:
        super().__init__()
        from masklab.models.mae import MAE

        self.model = MAE.from_preset("mae-tiny", channels=1)

    def forward(self, images: Tensor, noise: Tensor) -> Tensor:
        return self.model(images, noise=noise).pred


class MLMLogits(nn.Module):
    """BERT-MLM ``ids -> logits (B, L, V)`` at every position."""

    def __init__(self) -> None:
        super().__init__()
        from masklab.models.mlm import BertForMLM

        self.model = BertForMLM.from_preset(
            "bert-tiny", vocab_size=64, mask_id=3, special_ids=(0, 1, 2, 3), dim=32, heads=2, dropout=0.0,
            attn_dropout=0.0, max_len=32,
        )  # fmt: skip

    def forward(self, ids: Tensor) -> Tensor:
        return self.model.head(self.model(ids), self.model.bert.embeddings.word.weight)


class GPTLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from masklab.models.clm import GPT

        self.model = GPT.from_preset("gpt-tiny", vocab_size=40, dim=32, context=32)

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids)


class TableCells(nn.Module):
    """TableMAE ``(values, categories, ids_keep, slot_padding, ids_restore) -> (numeric (B, C), logits (B, ΣK))``
    with the visible-cell packing (:func:`visible_layout` of the hidden cells) given."""

    def __init__(self) -> None:
        super().__init__()
        from masklab.models.table import TableMAE

        self.model = TableMAE.from_preset("table-tiny", schema=SCHEMA)

    def forward(
        self, values: Tensor, categories: Tensor, ids_keep: Tensor, slot_padding: Tensor, ids_restore: Tensor
    ) -> tuple[Tensor, Tensor]:
        layout = VisibleLayout(ids_keep, slot_padding, ids_restore)
        hidden = torch.zeros_like(ids_restore, dtype=torch.bool)  # not read: the layout says what is visible
        pred = self.model(values, categories, hidden, layout)
        return pred.numeric, torch.cat([pred.logits[j] for j in sorted(pred.logits)], dim=-1)


class SeriesPatches(nn.Module):
    """PatchTST ``(values, padding, observed, masked) -> (loss, pred (B, C, L, P))``."""

    def __init__(self) -> None:
        super().__init__()
        from masklab.models.series import PatchTST

        self.model = PatchTST.from_preset("series-tiny", channels=2)

    def forward(self, values: Tensor, padding: Tensor, observed: Tensor, masked: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(SeriesBatch(values, padding, observed), masked)
        return out.loss, out.pred


class SeriesLogits(nn.Module):
    """Series classifier ``(values, padding, observed) -> logits (B, K)``."""

    def __init__(self) -> None:
        super().__init__()
        from masklab.models.series import SeriesClassifier

        self.model = SeriesClassifier.from_preset("series-tiny", channels=2, num_classes=3)

    def forward(self, values: Tensor, padding: Tensor, observed: Tensor) -> Tensor:
        return self.model.logits(SeriesBatch(values, padding, observed))


class SegmentLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        from masklab.models.mae import MAE
        from masklab.models.segment import Segmenter

        self.model = Segmenter.from_preset("finetune", encoder=MAE.from_preset("mae-tiny", channels=1).config)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def _mae_args(g: torch.Generator) -> tuple[Tensor, ...]:
    return torch.rand(4, 1, 16, 16, generator=g), torch.rand(4, 16, generator=g)


def _ids(vocab: int) -> Callable[[torch.Generator], tuple[Tensor, ...]]:
    return lambda g: (torch.randint(4, vocab, (3, 12), generator=g),)


def _table_args(g: torch.Generator) -> tuple[Tensor, ...]:
    values = torch.randn(6, 4, generator=g)
    categories = torch.stack([torch.zeros(6, dtype=torch.long), torch.randint(3, (6,), generator=g),
                              torch.zeros(6, dtype=torch.long), torch.randint(2, (6,), generator=g)], 1)  # fmt: skip
    hidden = torch.rand(6, 4, generator=g) < 0.4  # (B, C) True = hidden from the encoder
    hidden[:, 0], hidden[:, 3] = False, True  # no row all hidden, none all visible
    hidden[1, 1:3] = False  # row 1 sees 3 cells: every draw packs 3 slots, so both inputs have one shape
    layout = visible_layout(hidden)
    return values, categories, layout.ids_keep, layout.padding, layout.ids_restore


def _series_inputs(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    padding = torch.zeros(3, 16, dtype=torch.bool)
    padding[int(torch.randint(3, (1,), generator=g)), int(torch.randint(6, 14, (1,), generator=g)) :] = True
    observed = (torch.rand(3, 16, 2, generator=g) > 0.2) & ~padding[..., None]
    values = torch.where(observed, torch.randn(3, 16, 2, generator=g).cumsum(1), 0.0)
    return values, padding, observed


def _series_args(g: torch.Generator) -> tuple[Tensor, ...]:
    values, padding, observed = _series_inputs(g)
    masked = (torch.rand(3, 2, 4, generator=g) < 0.4) & ~padding[:, None, ::4]  # (B, C, L) real patches only
    return values, padding, observed, masked


CASES: dict[str, tuple[type[nn.Module], Callable[[torch.Generator], tuple[Tensor, ...]]]] = {
    "mae": (MAEPred, _mae_args),
    "mlm": (MLMLogits, _ids(64)),
    "clm": (GPTLogits, _ids(40)),
    "table": (TableCells, _table_args),
    "series": (SeriesPatches, _series_args),
    "series-classifier": (SeriesLogits, _series_inputs),
    "segment": (SegmentLogits, lambda g: (torch.rand(4, 1, 16, 16, generator=g),)),
}


def _case(kind: str) -> tuple[nn.Module, tuple[Tensor, ...], tuple[Tensor, ...]]:
    cls, make_args = CASES[kind]
    torch.manual_seed(0)
    module = cls().eval()
    return module, make_args(torch.Generator().manual_seed(1)), make_args(torch.Generator().manual_seed(2))


def _assert_same(got, expected) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# The tracer warns at every Python comparison of a size (input checks, patch counts): sizes are constants of a
# trace by design, and the second input of the same shape shows that nothing else was baked in.
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("kind", list(CASES))
def test_jit_trace_equals_eager(kind):
    module, args, other = _case(kind)
    with torch.no_grad():
        traced = torch.jit.trace(module, args, check_trace=False)
        _assert_same(traced(*args), module(*args))
        _assert_same(traced(*other), module(*other))  # nothing of the first input's values was baked in


@pytest.mark.slow  # 3-13 s a model under load (tests/nn/test_cpu_linear_choice.py exports MAE, MLM, GPT by default)
@pytest.mark.parametrize("kind", list(CASES))
def test_export_equals_eager(kind):
    module, args, other = _case(kind)
    exported = torch.export.export(module, args).module()
    with torch.no_grad():
        _assert_same(exported(*args), module(*args))
        _assert_same(exported(*other), module(*other))
