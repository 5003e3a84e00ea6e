"""masklab pretrain table / impute / score end to end, and their errors on bad input."""

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from masklab.cli import main

N = 60


def write_csv(path, n=N, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "a": np.round(a, 3).astype(object),
            "b": np.round(2 * a + 0.1 * rng.normal(size=n), 3).astype(object),
            "city": rng.choice(["Oslo", "Lima"], size=n).astype(object),
        }
    )
    frame.loc[[1, 5, 9], "a"] = ""
    frame.loc[[2, 7], "b"] = "NA"
    frame.loc[[3], "city"] = ""
    frame.to_csv(path, index=False)
    return path


def rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    data = write_csv(root / "train.csv")
    run = root / "run"
    args = ["pretrain", "table", "--data", str(data), "--out", str(run), "--preset", "table-tiny"]
    assert main([*args, "--steps", "20", "--batch-size", "16", "--exclude", "id", "--device", "cpu"]) == 0
    return data, run


def test_pretrain_writes_a_run(trained):
    _, run = trained
    assert {"config.json", "checkpoint.safetensors", "table.json"} <= {p.name for p in run.iterdir()}
    assert '"id"' not in (run / "config.json").read_text()  # the id column is no feature ("mlp_hidden" is fine)


def test_impute_changes_only_missing_cells(trained, tmp_path, capsys):
    data, run = trained
    before = digest(data)
    out = tmp_path / "filled.csv"
    assert main(["impute", str(run), str(data), "-o", str(out)]) == 0
    assert digest(data) == before  # the input is never modified
    original, filled = rows(data), rows(out)
    assert original[0] == filled[0] and len(original) == len(filled)
    changed = {(i, j) for i in range(1, len(original)) for j in range(4) if original[i][j] != filled[i][j]}
    assert changed == {(2, 1), (6, 1), (10, 1), (3, 2), (8, 2), (4, 3)}  # CSV lines of the missing cells
    assert all(filled[i][j] not in ("", "NA") for i, j in changed)
    assert filled[4][3] in ("Oslo", "Lima")
    report = capsys.readouterr().out
    assert "filled 6 missing cells" in report
    assert [line.split() for line in report.splitlines()[2:5]] == [["a", "3"], ["b", "2"], ["city", "1"]]
    assert "passed through unchanged (not features): ['id']" in report


def test_impute_parquet(trained, tmp_path):
    data, run = trained
    source = tmp_path / "in.parquet"
    pd.read_csv(data).to_parquet(source)
    out = tmp_path / "out.parquet"
    assert main(["impute", str(run), str(source), "-o", str(out)]) == 0
    before, after = pd.read_parquet(source), pd.read_parquet(out)
    observed = before.notna()
    pd.testing.assert_frame_equal(after[observed.all(axis=1)], before[observed.all(axis=1)], check_dtype=False)
    assert after.notna().all().all()


def test_score_writes_scores_and_histogram(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(data), "-o", str(out), "--threshold", "1.0"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["row", "anomaly_score", "is_anomaly"] and len(scores) == N
    assert (scores["is_anomaly"] == (scores["anomaly_score"] > 1.0)).all()
    assert (tmp_path / "scores.png").stat().st_size > 0
    again = tmp_path / "again.csv"
    assert main(["score", str(run), str(data), "-o", str(again), "--histogram", str(tmp_path / "h.png")]) == 0
    np.testing.assert_array_equal(pd.read_csv(again)["anomaly_score"], scores["anomaly_score"])  # deterministic
    assert "scored 60 rows" in capsys.readouterr().out


def test_score_equals_the_estimator(trained, tmp_path, capsys):
    """CLI == Python for a pretrain run (its scoring.json: error models and threshold chosen on the training
    rows) and for a fitted detector saved with .save() (refit model, error models, threshold)."""
    from masklab.estimators import MaskedAnomalyDetector

    data, run = trained
    frame = pd.read_csv(data).drop(columns="id")
    from_run = MaskedAnomalyDetector.from_run(run)
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(data), "-o", str(out)]) == 0
    cli = pd.read_csv(out)
    np.testing.assert_allclose(cli["anomaly_score"], from_run.anomaly_score(frame), rtol=1e-12)
    calibrated = MaskedAnomalyDetector.from_run(run, random_state=0).calibrate(frame)  # by hand, same masks
    stored = json.loads((run / "scoring.json").read_text())
    np.testing.assert_array_equal(np.asarray(stored["cauchy_"]), calibrated.cauchy_)
    assert stored["threshold_"] == calibrated.threshold_ == from_run.threshold_
    assert stored["neighbors"] == 5 and from_run.reference_ is not None and (run / "scoring.safetensors").is_file()
    np.testing.assert_allclose(stored["score_scales_"], calibrated.score_scales_, rtol=1e-12)
    assert (cli["is_anomaly"] == (cli["anomaly_score"] > from_run.threshold_)).all()

    fitted = MaskedAnomalyDetector(preset="table-tiny", steps=20, batch_size=16, n_masks=2).fit(frame)
    fitted.save(tmp_path / "det")
    out = tmp_path / "fitted.csv"
    assert main(["score", str(tmp_path / "det"), str(data), "-o", str(out), "--exclude", "id", "--explain"]) == 0
    np.testing.assert_allclose(pd.read_csv(out)["anomaly_score"], fitted.anomaly_score(frame), rtol=1e-12)
    explained = pd.read_csv(tmp_path / "fitted.explain.csv")
    assert list(explained.columns) == [
        "data_row", "anomaly_score", "rank", "column", "observed", "expected", "contribution", "share",
    ]  # fmt: skip
    assert set(explained["data_row"]) == set(range(1, N + 1))
    assert (tmp_path / "fitted.explain.png").stat().st_size > 0
    assert "explanations ->" in capsys.readouterr().out


def error_of(args, capsys):
    assert main(args) == 2
    return capsys.readouterr().err


def test_inference_errors_name_the_problem(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    bad = tmp_path / "bad.csv"
    frame.assign(extra=1).to_csv(bad, index=False)
    assert "unknown column(s) ['extra']" in error_of(
        ["score", str(run), str(bad), "-o", str(tmp_path / "s.csv")], capsys
    )
    frame.assign(a=["oops" if i == 4 else v for i, v in enumerate(frame["a"])]).to_csv(bad, index=False)
    err = error_of(["impute", str(run), str(bad), "-o", str(tmp_path / "o.csv")], capsys)
    assert f"{bad}: column 'a' is numeric but row 5 holds 'oops'" in err  # the file named, then column and row
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "is empty" in error_of(["impute", str(run), str(empty), "-o", str(tmp_path / "o.csv")], capsys)
    header = tmp_path / "header.csv"
    header.write_text("id,a,b,city\n")
    assert "no data rows" in error_of(["score", str(run), str(header), "-o", str(tmp_path / "s.csv")], capsys)
    assert "never modifies its input" in error_of(["impute", str(run), str(data), "-o", str(data)], capsys)


def test_score_output_errors_come_before_any_work_and_leave_nothing(trained, tmp_path, capsys):
    data, run = trained
    score = ["score", str(run), str(data)]
    assert "would be the same file" in error_of([*score, "-o", str(tmp_path / "s.png")], capsys)
    png = tmp_path / "s.png"
    assert "is the scores file" in error_of([*score, "-o", str(png), "--histogram", str(png)], capsys)
    same = tmp_path / "s.csv"
    assert "ending in .png" in error_of([*score, "-o", str(same), "--histogram", str(tmp_path / "h.jpgx")], capsys)
    assert "--threshold must be a finite number, got nan" in error_of([*score, "-o", str(same), "--threshold", "nan"],
                                                                       capsys)  # fmt: skip
    err = error_of([*score, "-o", str(same), "--chunk-rows", "5", "--explain", "--histogram", "h.png"], capsys)
    assert "--explain, --histogram: not available with --chunk-rows" in err
    assert sorted(tmp_path.iterdir()) == []  # no scores CSV left behind by any of them


def test_a_value_beyond_float32_is_refused_naming_its_row(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    bad = tmp_path / "big.csv"
    frame.assign(b=["1e308" if i == 2 else v for i, v in enumerate(frame["b"])]).to_csv(bad, index=False)
    for command in ("impute", "score"):
        err = error_of([command, str(run), str(bad), "-o", str(tmp_path / "o.csv")], capsys)
        assert "column 'b': row 3 holds 1e+308, beyond float32's range" in err


def test_chunked_inputs_are_checked_as_the_whole_file_is(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    extra = tmp_path / "extra.csv"
    frame.assign(extra=1).to_csv(extra, index=False)
    for command in ("impute", "score"):  # an unknown column passed through in chunks, refused for the whole file
        err = error_of([command, str(run), str(extra), "-o", str(tmp_path / "o.csv"), "--chunk-rows", "7"], capsys)
        assert f"error: {extra}: unknown column(s) ['extra']" in err  # a file-level error: no chunk rows
    bad = tmp_path / "bad.csv"
    frame.assign(a=["oops" if i == 9 else v for i, v in enumerate(frame["a"])]).to_csv(bad, index=False)
    err = error_of(["impute", str(run), str(bad), "-o", str(tmp_path / "o.csv"), "--chunk-rows", "7"], capsys)
    assert "bad.csv, data rows 8-14 (one chunk; a row number below counts within it)" in err
    assert "row 3 holds 'oops'" in err
    assert not (tmp_path / "o.csv").exists()


def test_pretrain_rejects_an_all_missing_column(tmp_path, capsys):
    data = tmp_path / "d.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0], "gone": [np.nan] * 3}).to_csv(data, index=False)
    err = error_of(["pretrain", "table", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1"], capsys)
    assert "column 'gone' is entirely missing" in err


def test_shuttle_default_keeps_its_label_aside(tmp_path, capsys):
    from masklab.data.tables import load_builtin

    run = tmp_path / "run"
    args = ["pretrain", "table", "--out", str(run), "--preset", "table-tiny", "--max-rows", "300", "--steps", "3"]
    assert main([*args, "--batch-size", "16", "--device", "cpu"]) == 0  # --data defaults to builtin:shuttle
    info = json.loads((run / "table.json").read_text())
    assert info["data"] == "builtin:shuttle" and info["label"] == "anomaly" and info["rows_used"] == 300
    shuttle = load_builtin("shuttle")
    sample = tmp_path / "sample.csv"
    shuttle.frame.assign(anomaly=shuttle.labels).iloc[:400].to_csv(sample, index=False)
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(sample), "-o", str(out)]) == 0  # 'anomaly' is the label, not a feature
    assert list(pd.read_csv(out).columns) == ["row", "anomaly_score", "anomaly", "is_anomaly"]
    assert "label 'anomaly'" in capsys.readouterr().out


def test_impute_in_chunks_equals_whole_file(trained, tmp_path):
    data, run = trained
    source = tmp_path / "in.parquet"
    pd.read_csv(data).to_parquet(source, row_group_size=25)
    whole, chunked = tmp_path / "whole.parquet", tmp_path / "chunked.parquet"
    assert main(["impute", str(run), str(source), "-o", str(whole)]) == 0
    assert main(["impute", str(run), str(source), "-o", str(chunked), "--chunk-rows", "7"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(chunked), pd.read_parquet(whole), check_dtype=False)


def test_score_in_chunks_equals_whole_file(trained, tmp_path):
    data, run = trained
    whole, chunked = tmp_path / "whole.csv", tmp_path / "chunked.csv"
    assert main(["score", str(run), str(data), "-o", str(whole), "--threshold", "1.0"]) == 0
    assert main(["score", str(run), str(data), "-o", str(chunked), "--threshold", "1.0", "--chunk-rows", "7"]) == 0
    a, b = pd.read_csv(whole), pd.read_csv(chunked)
    assert list(a.columns) == list(b.columns)
    np.testing.assert_allclose(b["anomaly_score"], a["anomaly_score"], rtol=1e-6)
    assert b["row"].tolist() == a["row"].tolist() and b["is_anomaly"].tolist() == a["is_anomaly"].tolist()


def test_resume_refuses_a_changed_setting_and_extends_with_steps(tmp_path, capsys):
    data = write_csv(tmp_path / "t.csv")
    out = tmp_path / "run"
    base = ["pretrain", "table", "--data", str(data), "--preset", "table-tiny", "--exclude", "id", "--batch-size",
            "16", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main([*base, "--steps", "3"]) == 0
    config = (out / "config.json").read_bytes()
    capsys.readouterr()
    assert main(["pretrain", "table", "--out", str(out), "--resume", "--mask-ratio", "0.3", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model.mask_ratio: recorded 0.5, given 0.3" in err and "train.lr" in err
    assert (out / "config.json").read_bytes() == config  # a refused resume leaves the run untouched
    assert not (out / ".lock").exists()
    assert main(["pretrain", "table", "--out", str(out), "--resume", "--steps", "5"]) == 0  # recorded args + longer
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["steps"] == 5 and saved["model"]["mask_ratio"] == 0.5
    assert json.loads((out / "arguments.json").read_text())["arguments"]["train"]["steps"] == 5


def test_pretrain_neighbors_sets_the_runs_scoring(tmp_path, capsys):
    """--neighbors 0: the run keeps no rows and scores by reconstruction alone; a negative K is refused."""
    from masklab.estimators import MaskedAnomalyDetector

    data = tmp_path / "d.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"]).to_csv(data, index=False)
    run = tmp_path / "run"
    args = ["pretrain", "table", "--data", str(data), "--preset", "table-tiny", "--steps", "3", "--batch-size", "16"]
    assert main([*args, "--out", str(run), "--neighbors", "0", "--device", "cpu"]) == 0
    assert json.loads((run / "scoring.json").read_text())["neighbors"] == 0
    assert not (run / "scoring.safetensors").exists()
    detector = MaskedAnomalyDetector.from_run(run)
    frame = pd.read_csv(data)
    np.testing.assert_allclose(detector.anomaly_score(frame), detector.cell_errors(frame).mean(axis=(0, 2)))
    err = error_of([*args, "--out", str(tmp_path / "bad"), "--neighbors", "-1"], capsys)
    assert "--neighbors must be an int >= 0" in err


def test_impute_with_a_saved_imputer_equals_its_transform(trained, tmp_path, capsys):
    # `score` took a saved detector folder; `impute` refused a saved imputer ("not a masklab run").
    from masklab.estimators import MaskedAnomalyDetector, MaskedImputer

    data, _ = trained
    frame = pd.read_csv(data).drop(columns=["id"])
    MaskedImputer(preset="table-tiny", steps=10, batch_size=16, random_state=0).fit(frame).save(tmp_path / "imp")
    expected = MaskedImputer.load(tmp_path / "imp").transform(frame)
    for extra in ([], ["--chunk-rows", "7"]):
        out = tmp_path / f"filled{len(extra)}.parquet"
        assert main(["impute", str(tmp_path / "imp"), str(data), "-o", str(out), "--exclude", "id", *extra]) == 0
        got = pd.read_parquet(out)
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
        assert got["id"].tolist() == pd.read_csv(data)["id"].tolist()  # passed through
    MaskedAnomalyDetector(preset="table-tiny", steps=4, batch_size=16).fit(frame).save(tmp_path / "det")
    err = error_of(["impute", str(tmp_path / "det"), str(data), "-o", str(tmp_path / "x.csv")], capsys)
    assert "holds a 'MaskedAnomalyDetector'" in err and "not a MaskedImputer" in err
