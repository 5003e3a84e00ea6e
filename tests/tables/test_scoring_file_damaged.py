"""A table run's damaged ``scoring.json`` is named (``score`` printed only the JSON parser's message)."""

import json

import pytest

from masklab.cli import main


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "table"
    argv = ["pretrain", "table", "--data", "builtin:iris", "--preset", "table-tiny", "--steps", "3", "--out", str(run)]
    assert main(argv) == 0
    return run


@pytest.mark.parametrize(
    ("content", "said"),
    [("{x", "not valid JSON"), (json.dumps({"n_masks": 2}), "not a table run's scoring state (needs n_masks, seed_")],
)
def test_score_names_a_damaged_scoring_file(content, said, table_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(table_run, run)
    (run / "scoring.json").write_text(content)
    assert main(["score", str(run), "builtin:iris", "-o", str(tmp_path / "scores.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'scoring.json'}: {said}" in err, err
    assert not (tmp_path / "scores.csv").exists()
