"""Every recipe that writes a new file from an input file refuses ``-o`` naming the input, in the same words,
before any work (no run is loaded: the run path here does not exist)."""

from __future__ import annotations

import pytest

from masklab.recipes.common import check_output_is_not_input
from masklab.recipes.series_tasks import impute_series
from masklab.recipes.table import impute, score
from masklab.recipes.table_stream import impute_chunked


@pytest.mark.parametrize(
    ("task", "call", "name"),
    [
        ("impute", lambda run, data: impute(run, data, data), "data.csv"),
        ("score", lambda run, data: score(run, str(data), data), "data.csv"),
        ("impute", lambda run, data: impute_chunked(run, data, data, chunk_rows=10), "data.csv"),
        ("impute", lambda run, data: impute_series(run, data, data), "data.npz"),
    ],
)
def test_each_recipe_refuses_to_write_over_its_input(tmp_path, task, call, name):
    data = tmp_path / name
    data.write_text("a,b\n1,2\n")
    expected = f"-o {data} is the input file; {task} never modifies its input, pick another path"
    with pytest.raises(ValueError) as raised:
        call(tmp_path / "no-run", data)
    assert str(raised.value) == expected
    assert data.read_text() == "a,b\n1,2\n"


def test_the_same_file_by_another_name_is_refused_and_other_outputs_pass(tmp_path, monkeypatch):
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"^-o \./sub/\.\./data\.csv is the input file; score never modifies"):
        (tmp_path / "sub").mkdir()
        check_output_is_not_input("./sub/../data.csv", data, "score")
    check_output_is_not_input(tmp_path / "out.csv", data, "impute")  # a new file
    (tmp_path / "builtin:iris").write_text("")  # a built-in table is never a file, whatever lies in the folder
    check_output_is_not_input("builtin:iris", "builtin:iris", "impute")
