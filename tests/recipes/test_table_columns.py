"""The whole-file and the chunked table recipes set aside the same columns (the run's own excluded and label
columns, from table.json) and refuse an unknown column in the same words."""

from __future__ import annotations

import json

import pytest

from masklab.recipes.table import check_known_columns, trained_aside


def test_trained_aside_reads_the_runs_table_json(tmp_path):
    assert trained_aside(tmp_path) == ([], None)  # a run trained without the recipe has none
    (tmp_path / "table.json").write_text(json.dumps({"exclude": ["id"], "label": "y"}))
    assert trained_aside(tmp_path) == (["id"], "y")


def test_an_unknown_column_is_named_unless_set_aside():
    check_known_columns("t.csv", ["a", "id", "b"], ["a", "b"], aside={"id"})
    with pytest.raises(ValueError) as raised:
        check_known_columns("t.csv", ["a", "id", "b", "x"], ("a", "b"), aside={"x"})
    assert str(raised.value) == (
        "t.csv: unknown column(s) ['id']; the model was trained on ['a', 'b'] "
        "(pass --exclude COL,... for columns that are not features)"
    )
