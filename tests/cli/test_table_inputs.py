"""impute / score on the inputs a user actually has (issue 17, item 6): a built-in table, the model's columns in
another order, an empty row, an identifier column, integer columns; error hints that name flags which exist."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from masklab.cli import build_parser, main

N = 60


def table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=N)
    return pd.DataFrame(
        {
            "id": np.arange(1, N + 1),
            "a": np.round(a, 3),
            "n": np.clip(np.round(3 * a + 5), 0, 10).astype(int),  # an integer column, tied to a
            "city": rng.choice(["Oslo", "Lima"], size=N),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained with the id column as a feature (the warning) and one with it excluded."""
    root = tmp_path_factory.mktemp("inputs")
    data = root / "train.csv"
    table().to_csv(data, index=False)
    base = ["pretrain", "table", "--data", str(data), "--preset", "table-tiny", "--steps", "20", "--batch-size",
            "16", "--device", "cpu"]  # fmt: skip
    assert main([*base, "--out", str(root / "run"), "--exclude", "id"]) == 0
    return data, root / "run"


def error_of(args, capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_an_identifier_column_is_named_with_the_flag_that_drops_it(tmp_path, capsys):
    data = tmp_path / "t.csv"
    table().to_csv(data, index=False)
    args = ["pretrain", "table", "--data", str(data), "--preset", "table-tiny", "--steps", "2", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "column(s) ['id'] look like row identifiers" in err and "--exclude id" in err
    build_parser(args).parse_args([*args, "--out", "x", "--exclude", "id"])  # the flag it names exists
    from masklab.recipes.table import warn_identifiers

    assert warn_identifiers(table().drop(columns="id")) == []  # nothing to say once it is excluded
    assert "identifiers" not in capsys.readouterr().err


def test_score_carries_an_id_column(trained, tmp_path, capsys):
    data, run = trained
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), str(data), "-o", str(out), "--id-column", "id"]) == 0
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["row", "id", "anomaly_score", "is_anomaly"]
    assert scores["id"].tolist() == list(range(1, N + 1))
    assert main(["score", str(run), str(data), "-o", str(out), "--id-column", "id", "--explain"]) == 0
    explained = pd.read_csv(tmp_path / "scores.explain.csv")  # the id names each explained row there too
    assert list(explained.columns[:2]) == ["data_row", "id"]
    assert (explained["id"] == scores["id"].to_numpy()[explained["data_row"] - 1]).all()
    assert "--id-column 'a' is one of the model's features" in error_of(
        ["score", str(run), str(data), "-o", str(out), "--id-column", "a"], capsys
    )


def test_integer_columns_come_back_as_integers(trained, tmp_path):
    _, run = trained
    spec = {c["name"]: c for c in json.loads((run / "config.json").read_text())["model"]["schema"]["columns"]}
    assert spec["n"].get("integer") is True and "integer" not in spec["a"]  # recorded in the schema
    holes = table().astype(object)
    holes.loc[[2, 9, 30], "n"] = ""
    holes.loc[[4], "a"] = ""
    source, out = tmp_path / "holes.csv", tmp_path / "filled.csv"
    holes.to_csv(source, index=False)
    assert main(["impute", str(run), str(source), "-o", str(out)]) == 0
    filled = pd.read_csv(out, dtype=str)
    assert all(filled.loc[i, "n"].lstrip("-").isdigit() for i in (2, 9, 30)), filled.loc[[2, 9, 30], "n"]
    assert "." in filled.loc[4, "a"] or "e" in filled.loc[4, "a"]  # a float column stays float

    from masklab.estimators import MaskedImputer

    frame = pd.read_csv(source).drop(columns="id")  # n is float64 there (its empty cells are NaN)
    result = MaskedImputer.from_run(run).transform(frame)
    assert result["n"].dtype == np.int64 and result["a"].dtype == np.float64
    np.testing.assert_array_equal(result["n"].to_numpy()[[0, 1, 3]], frame["n"].to_numpy()[[0, 1, 3]])


def test_the_columns_in_another_order(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data)
    frame.loc[[1, 5], "a"] = np.nan
    straight, shuffled = tmp_path / "straight.csv", tmp_path / "shuffled.csv"
    frame.to_csv(straight, index=False)
    frame[["city", "n", "id", "a"]].to_csv(shuffled, index=False)
    for name in ("straight", "shuffled"):
        assert main(["impute", str(run), str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / f"{name}-f.csv")]) == 0
        assert main(["score", str(run), str(tmp_path / f"{name}.csv"), "-o", str(tmp_path / f"{name}-s.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "straight-f.csv"), pd.read_csv(tmp_path / "shuffled-f.csv")
    assert list(b.columns) == ["city", "n", "id", "a"]  # written back in the file's order
    pd.testing.assert_frame_equal(b[a.columns], a)
    scores = [pd.read_csv(tmp_path / f"{name}-s.csv")["anomaly_score"] for name in ("straight", "shuffled")]
    np.testing.assert_array_equal(scores[1], scores[0])
    from masklab.estimators import MaskedImputer

    imputer = MaskedImputer.from_run(run)
    with pytest.raises(ValueError, match=r"another order: \['city', 'n', 'a'\]; expected \['a', 'n', 'city'\]"):
        imputer.transform(frame[["city", "n", "a"]])
    with pytest.raises(ValueError, match=r"unknown \['x'\], missing \['city'\]"):
        imputer.transform(frame[["a", "n"]].assign(x=1))
    absent = tmp_path / "absent.csv"
    frame.drop(columns="city").to_csv(absent, index=False)
    err = error_of(["impute", str(run), str(absent), "-o", str(tmp_path / "o.csv")], capsys)
    assert "['city'] the model was trained on are missing" in err and "['a', 'n', 'city']" in err


def test_impute_and_score_take_a_builtin_table(tmp_path, capsys):
    run = tmp_path / "iris"
    args = ["pretrain", "table", "--data", "builtin:iris", "--preset", "table-tiny", "--steps", "3", "--out", str(run)]
    assert main([*args, "--device", "cpu"]) == 0
    out = tmp_path / "iris.csv"
    assert main(["impute", str(run), "builtin:iris", "-o", str(out)]) == 0
    assert "filled 0 missing cells of 150 rows" in capsys.readouterr().out
    from masklab.data.tables import load_builtin

    iris = load_builtin("iris")
    written = pd.read_csv(out)
    assert list(written.columns) == [*iris.frame.columns, "target"]
    np.testing.assert_allclose(written[iris.frame.columns].to_numpy(), iris.frame.to_numpy())
    assert main(["score", str(run), "builtin:iris", "-o", str(tmp_path / "s.csv")]) == 0
    assert "built-in table" in error_of(
        ["impute", str(run), "builtin:iris", "-o", str(tmp_path / "c.csv"), "--chunk-rows", "10"], capsys
    )


def test_a_row_with_every_cell_missing_has_no_score(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data).astype(object)
    frame.loc[3, ["a", "n", "city"]] = ""
    source, out = tmp_path / "empty-row.csv", tmp_path / "scores.csv"
    frame.to_csv(source, index=False)
    assert main(["score", str(run), str(source), "-o", str(out), "--threshold", "0"]) == 0
    captured = capsys.readouterr()
    assert "1 row(s) have every cell missing: no score" in captured.err
    scores = pd.read_csv(out)
    assert np.isnan(scores.loc[3, "anomaly_score"]) and pd.isna(scores.loc[3, "is_anomaly"])
    assert scores.drop(index=3)["anomaly_score"].notna().all() and (scores.drop(index=3)["is_anomaly"] == 1).all()
    chunked = tmp_path / "chunked.csv"
    assert main(["score", str(run), str(source), "-o", str(chunked), "--threshold", "0", "--chunk-rows", "7"]) == 0
    assert "1 row(s) have every cell missing" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_csv(chunked), scores, check_dtype=False)

    from masklab.estimators import MaskedAnomalyDetector

    features = pd.read_csv(source).drop(columns="id")
    with pytest.warns(UserWarning, match=r"1 row\(s\) have no observed cell"):
        direct = MaskedAnomalyDetector.from_run(run).anomaly_score(features)
    assert np.isnan(direct[3]) and np.isfinite(np.delete(direct, 3)).all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MaskedAnomalyDetector.from_run(run).anomaly_score(features.drop(index=3))
    assert not [w for w in caught if "no observed cell" in str(w.message)]  # no warning without such a row


def test_error_hints_name_flags_of_the_command(trained, tmp_path, capsys):
    data, run = trained
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    bad = tmp_path / "bad.csv"
    frame.assign(a=["oops" if i == 4 else v for i, v in enumerate(frame["a"])]).to_csv(bad, index=False)
    err = error_of(["impute", str(run), str(bad), "-o", str(tmp_path / "o.csv")], capsys)
    assert "column 'a' is numeric but row 5 holds 'oops'" in err and "--categorical" not in err
    frame.assign(city=["Rome" if i == 2 else v for i, v in enumerate(frame["city"])]).to_csv(bad, index=False)
    for command in ("impute", "score"):
        err = error_of([command, str(run), str(bad), "-o", str(tmp_path / "o.csv")], capsys)
        assert "row 3 holds 'Rome', a category not seen in training" in err and "--handle-unknown missing" in err
        args = [command, str(run), str(bad), "-o", str(tmp_path / "o.csv"), "--handle-unknown", "missing"]
        assert main(args) == 0  # the hint works as written
    train = tmp_path / "train.csv"
    frame.assign(a=["x" if i == 4 else v for i, v in enumerate(frame["a"])]).to_csv(train, index=False)
    args = ["pretrain", "table", "--data", str(train), "--out", str(tmp_path / "r"), "--steps", "1"]
    err = error_of(args, capsys)
    assert "--categorical a" in err
    build_parser(args).parse_args([*args, "--categorical", "a"])  # pretrain table has that flag
