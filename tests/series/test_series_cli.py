"""``masklab pretrain series`` -> probe / finetune / forecast / impute end to end on a small .npz, and the
errors (exit 2, no traceback) on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from masklab.cli import main


def write_npz(path, n: int = 24, seed: int = 0):
    """Noisy sines of two frequencies (the label), lengths 20-40, some values missing."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 41, size=n)
    labels = np.arange(n) % 2
    values = np.full((n, 40, 2), np.nan, dtype=np.float32)
    for i, (length, y) in enumerate(zip(lengths, labels, strict=True)):
        t = np.arange(length)
        values[i, :length, 0] = np.sin(t * (0.3 + 0.4 * y)) + 0.1 * rng.normal(size=length)
        values[i, :length, 1] = np.cos(t * 0.2) * (1 + y) + 0.1 * rng.normal(size=length)
    values[0, 5:8, 0] = np.nan
    np.savez(path, values=values, lengths=lengths, labels=labels)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    data = write_npz(root / "s.npz")
    out = root / "run"
    code = main(["pretrain", "series", "--data", str(data), "--preset", "series-tiny", "--steps", "6",
                 "--batch-size", "8", "--out", str(out), "--device", "cpu"])  # fmt: skip
    assert code == 0
    return root, out


@pytest.mark.slow
def test_pretrain_writes_a_run(run) -> None:
    _, out = run
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "series" and config["model"]["channels"] == 2
    assert json.loads((out / "series.json").read_text())["series"] == 24
    assert (out / "reconstruction.png").stat().st_size > 0


@pytest.mark.slow
def test_forecast_and_impute(run, capsys) -> None:
    root, out = run
    assert main(["forecast", str(out), "--horizon", "5", "-o", str(root / "f.npz"), "--plot", str(root / "f.png")]) == 0
    assert np.load(root / "f.npz")["values"].shape == (24, 5, 2)
    assert "held-out tail MSE" in capsys.readouterr().out
    assert main(["impute", str(out), str(root / "s.npz"), "-o", str(root / "filled.npz")]) == 0
    filled = np.load(root / "filled.npz")
    original = np.load(root / "s.npz")
    assert not np.isnan(filled["values"][0, :8]).any()
    seen = ~np.isnan(original["values"])
    np.testing.assert_array_equal(filled["values"][seen], original["values"][seen])


@pytest.mark.slow
def test_bad_input_to_a_run_exits_2(run, tmp_path, capsys) -> None:
    root, out = run
    assert main(["forecast", str(out), "--horizon", "0"]) == 2
    assert "--horizon" in capsys.readouterr().err
    assert main(["impute", str(out), str(root / "s.npz"), "-o", str(tmp_path / "x.csv")]) == 2
    assert ".npz" in capsys.readouterr().err
    three = tmp_path / "three.npy"  # 3 channels for a 2-channel run: named, not a shape error from the model
    np.save(three, np.zeros((4, 30, 3), np.float32))
    for args in (["impute", str(out), str(three), "-o", str(tmp_path / "f.npz")],
                 ["forecast", str(out), "--horizon", "3", "--data", str(three)],
                 ["embed", str(out), "--data", str(three), "-o", str(tmp_path / "e.npy")]):  # fmt: skip
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "three.npy: 3 channel(s) per step" in err and "trained on 2" in err and "Traceback" not in err


def test_bad_input_exits_2(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, other=np.zeros(3))
    assert main(["pretrain", "series", "--data", str(bad), "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "'values'" in capsys.readouterr().err
    assert main(["forecast", str(tmp_path / "nope"), "--horizon", "3"]) == 2
    assert "nope" in capsys.readouterr().err
    good = write_npz(tmp_path / "s.npz")
    args = ["pretrain", "series", "--data", str(good), "--steps", "1", "--out", str(tmp_path / "r"), "--patch-len", "0"]
    assert main(args) == 2  # 0 was taken as "automatic" without a word
    assert "--patch-len must be >= 1 (or left out: automatic), got 0" in capsys.readouterr().err
    assert main([*args[:-1], "1000"]) == 2  # one mostly padded patch: nothing to predict a hidden patch from
    longest = int(np.load(good)["lengths"].max())
    assert f"--patch-len 1000 leaves the longest training series ({longest} steps) fewer than 2 patches" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "r").exists()
    complex_ = tmp_path / "c.npy"
    np.save(complex_, np.ones((2, 6, 1), np.complex64))
    assert main(["pretrain", "series", "--data", str(complex_), "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "complex values; series must hold real numbers" in capsys.readouterr().err


@pytest.mark.slow
def test_task_flags_build_the_validated_encoders(tmp_path, capsys) -> None:
    """``--task classify`` / ``--task forecast --horizon H`` pretrain with the settings of
    ``classifier_overrides`` / ``forecast_overrides`` (an explicit flag still wins), and the run serves."""
    from masklab.data.series import load_series
    from masklab.recipes.series import classifier_overrides, forecast_overrides

    data = write_npz(tmp_path / "s.npz")
    common = ["--data", str(data), "--preset", "series-tiny", "--steps", "4", "--batch-size", "8", "--device", "cpu"]
    assert main(["pretrain", "series", *common, "--task", "classify", "--out", str(tmp_path / "c")]) == 0
    model = json.loads((tmp_path / "c" / "config.json").read_text())["model"]
    expected = classifier_overrides(load_series(str(data)))
    assert {k: model[k] for k in expected} == expected and model["mask_kind"] == "random"
    assert main(["embed", str(tmp_path / "c"), "--data", str(data), "-o", str(tmp_path / "c.npy")]) == 0
    assert np.load(tmp_path / "c.npy").shape[0] == 24

    forecast = ["--task", "forecast", "--horizon", "6"]
    assert main(["pretrain", "series", *common, *forecast, "--out", str(tmp_path / "f")]) == 0
    model = json.loads((tmp_path / "f" / "config.json").read_text())["model"]
    assert {k: model[k] for k in forecast_overrides(6)} == forecast_overrides(6)
    assert main(["forecast", str(tmp_path / "f"), "--horizon", "6"]) == 0

    assert main(["pretrain", "series", *common, "--task", "forecast", "--mask-kind", "random", "--horizon", "6",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "r" / "config.json").read_text())["model"]["mask_kind"] == "random"
    capsys.readouterr()
    assert main(["pretrain", "series", *common, "--task", "forecast", "--out", str(tmp_path / "x")]) == 2
    assert main(["pretrain", "series", *common, "--horizon", "3", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.count("--horizon") == 2 and "Traceback" not in err


@pytest.mark.slow
def test_probe_and_finetune_on_labelled_data_without_a_split(run, capsys) -> None:
    # A user's .npz with labels but no train/test split was refused ("... a built-in"); now a stratified
    # quarter is held out, the same one for probe and finetune.
    root, out = run
    assert main(["probe", str(out)]) == 0
    text = capsys.readouterr().out
    assert "6 of its 24 series (a stratified 25%, fixed) are held out" in text
    assert "probe trained on 18 series, scored on 6 held-out series" in text
    assert main(["finetune", str(out), "--steps", "3", "--out", str(root / "ft")]) == 0
    metrics = json.loads((root / "ft" / "metrics.json").read_text())
    assert metrics["train_size"] == 18 and metrics["test_size"] == 6 and sum(map(sum, metrics["confusion"])) == 6
    assert main(["predict", str(root / "ft"), str(root / "s.npz"), "-o", str(root / "p.csv")]) == 0
    assert len((root / "p.csv").read_text().splitlines()) == 25
    lonely = root / "lonely.npz"  # a class with one series cannot be stratified: named, exit 2
    np.savez(lonely, values=np.zeros((5, 30, 2), np.float32), labels=np.array([0, 0, 0, 0, 1]))
    assert main(["probe", str(out), "--data", str(lonely)]) == 2
    assert "lonely.npz: cannot hold out a stratified 25% of 5 series" in capsys.readouterr().err


@pytest.mark.slow
def test_long_format_label_column(tmp_path, capsys) -> None:
    # A class column of a long-format CSV had no CLI name: it was read as a channel (or refused as text).
    rng = np.random.default_rng(0)
    rows = [(f"s{i}", t, np.sin(t * (0.3 + 0.4 * (i % 2))) + 0.1 * rng.normal(), ("down", "up")[i % 2])
            for i in range(24) for t in range(int(rng.integers(15, 30)))]  # fmt: skip
    data = tmp_path / "long.csv"
    pd = pytest.importorskip("pandas")
    pd.DataFrame(rows, columns=["id", "time", "x", "cls"]).to_csv(data, index=False)
    base = ["pretrain", "series", "--data", str(data), "--preset", "series-tiny", "--steps", "3", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "r0")]) == 2
    assert "channel column 'cls' is not numeric" in capsys.readouterr().err  # and the hint names --label
    assert main([*base, "--label", "cls", "--out", str(tmp_path / "r")]) == 0
    assert "24 series x 1 channels" in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "series.json").read_text())["label"] == "cls"
    assert main(["finetune", str(tmp_path / "r"), "--steps", "3"]) == 0
    metrics = json.loads((tmp_path / "r" / "finetune" / "metrics.json").read_text())
    assert metrics["labels"] == ["down", "up"] and metrics["label_column"] == "cls" and metrics["test_size"] == 6
    assert main(["predict", str(tmp_path / "r"), str(data), "-o", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "row,source,prediction,p_down,p_up"
    ids = sorted(f"s{i}" for i in range(24))  # series come out in id order: each output names its series
    assert [line.split(",")[1] for line in lines[1:]] == ids
    assert main(["impute", str(tmp_path / "r"), str(data), "-o", str(tmp_path / "f.npz")]) == 0  # label read too
    filled = np.load(tmp_path / "f.npz")
    assert filled["ids"].tolist() == ids and filled["labels"].tolist() == [("down", "up")[int(i[1:]) % 2] for i in ids]
    assert (
        main(["forecast", str(tmp_path / "r"), "--horizon", "3", "--data", str(data), "-o", str(tmp_path / "fc.npz")])
        == 0
    )
    assert np.load(tmp_path / "fc.npz")["ids"].tolist() == ids  # row k of the forecasts is series ids[k]
    npz = write_npz(tmp_path / "s.npz")
    assert main(["pretrain", "series", "--data", str(npz), "--label", "cls", "--out", str(tmp_path / "r2")]) == 2
    assert "a label column ('cls') is for long-format .csv / .parquet series" in capsys.readouterr().err


@pytest.mark.slow
def test_a_run_trained_on_a_relative_path_finds_its_data_from_anywhere(tmp_path, monkeypatch, capsys) -> None:
    # series.json kept the path as typed ("s.npz"), so `forecast RUN` from another folder failed with
    # "--data s.npz: no such file" though no --data was given.
    write_npz(tmp_path / "s.npz")
    monkeypatch.chdir(tmp_path)
    argv = ["pretrain", "series", "--data", "s.npz", "--preset", "series-tiny", "--steps", "2", "--out", "r"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "r" / "series.json").read_text())["data"] == str(tmp_path / "s.npz")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["forecast", str(tmp_path / "r"), "--horizon", "3", "-o", str(tmp_path / "s.npz")]) == 2
    assert "is the input file" in capsys.readouterr().err  # the run's own data is protected too
    assert main(["forecast", str(tmp_path / "r"), "--horizon", "3"]) == 0


@pytest.mark.slow
def test_forecasts_of_series_too_short_to_score_are_still_written(run, tmp_path, capsys) -> None:
    # The held-out score needs a series longer than horizon + 1; without one, forecast refused to write any
    # forecast at all (the server forecast the same series).
    _, out = run
    short = tmp_path / "short.npz"
    np.savez(short, values=np.random.default_rng(0).normal(size=(3, 4, 2)).astype(np.float32))
    assert main(["forecast", str(out), "--horizon", "6", "--data", str(short), "-o", str(tmp_path / "f.npz")]) == 0
    assert "no series is longer than horizon + 1 = 7 steps: no held-out score" in capsys.readouterr().out
    assert np.load(tmp_path / "f.npz")["values"].shape == (3, 6, 2)
    assert main(["forecast", str(out), "--horizon", "6", "--data", str(short)]) == 2  # nothing to do at all
