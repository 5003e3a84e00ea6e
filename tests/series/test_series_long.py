"""Long-format series files: time order, gaps in time, empty files, an absent label column."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from masklab.data.series import load_series

pd = pytest.importorskip("pandas")


def _write(tmp_path, rows, name="long.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("fmt", ["%-m/%-d/%Y", "%-d/%-m/%Y", "%Y/%m/%d"])
def test_text_dates_are_ordered_as_dates_not_as_text(tmp_path, fmt) -> None:
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(20), unit="D")  # day 13 on: one reading only
    rows = [dict(id="s0", time=d.strftime(fmt), x=float(k)) for k, d in enumerate(days)]
    data = load_series(_write(tmp_path, rows[::-1]))
    assert data.series[0][:, 0].tolist() == [float(k) for k in range(20)]  # "1/10/2024" sorted before "1/2/2024"


def test_dates_that_read_month_first_or_day_first_are_refused(tmp_path) -> None:
    rows = [dict(id="s0", time=t, x=1.0) for t in ("1/2/2024", "1/3/2024", "2/3/2024")]  # Jan 2 or Feb 1?
    with pytest.raises(ValueError, match=r"time column 'time' holds dates that read month first or day first "
                                         r"\(e\.g\. '1/2/2024'\); give ISO dates"):  # fmt: skip
        load_series(_write(tmp_path, rows))


def test_a_stray_far_off_time_does_not_blow_a_series_up(tmp_path) -> None:
    rows = [dict(id="s0", time=t, x=float(t)) for t in [*range(10), 1_000_000]]
    with pytest.warns(UserWarning, match="unevenly spaced"):
        data = load_series(_write(tmp_path, rows))
    assert len(data.series[0]) == 11  # not a million steps of nothing


def test_text_times_that_are_not_dates_are_refused_naming_column_and_value(tmp_path) -> None:
    rows = [dict(id="s0", time=t, x=1.0) for t in ("1/2/2024", "1/3/2024", "32/13/2024")]
    with pytest.raises(ValueError, match=r"time column 'time'.*'32/13/2024'"):
        load_series(_write(tmp_path, rows))
    rows = [dict(id="s0", time=t, x=1.0) for t in ("early", "late")]
    with pytest.raises(ValueError, match=r"time column 'time'.*'early'"):
        load_series(_write(tmp_path, rows))


def test_numeric_times_sort_as_numbers(tmp_path) -> None:
    data = load_series(_write(tmp_path, [dict(id="s0", time=t, x=float(t)) for t in (3, 1, 2, 10, 5)]))
    assert data.series[0][:3, 0].tolist() == [1.0, 2.0, 3.0]  # a text sort would give 1, 10, 2


def test_missing_integer_steps_become_not_observed_steps(tmp_path) -> None:
    rows = [dict(id="a", time=t, x=float(t)) for t in range(20) if not 10 <= t <= 14]
    rows += [dict(id="b", time=t, x=1.0) for t in range(0, 40, 2)]  # step 2: no gap
    data = load_series(_write(tmp_path, rows))
    a, b = data.series
    assert len(a) == 20 and np.isnan(a[10:15]).all() and a[15, 0] == 15.0
    assert len(b) == 20 and not np.isnan(b).any()


def test_missing_days_become_not_observed_steps(tmp_path) -> None:
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(8), unit="D")
    rows = [dict(id="a", time=d.strftime("%Y-%m-%d"), x=float(k)) for k, d in enumerate(days) if k != 3]
    (a,) = load_series(_write(tmp_path, rows)).series
    assert len(a) == 8 and np.isnan(a[3, 0]) and a[7, 0] == 7.0


@pytest.mark.parametrize("freq", ["MS", "ME", "QS", "YE"])  # month starts, month ends, quarters, years
def test_monthly_quarterly_and_yearly_dates_are_regular_steps(tmp_path, freq) -> None:
    # Their day counts differ (28-31 days a month), yet each is one step: a missing one is a not-observed step.
    dates = pd.date_range("2023-01-01", periods=12, freq=freq)
    rows = [dict(id="a", time=d.strftime("%Y-%m-%d"), x=float(k)) for k, d in enumerate(dates) if k != 5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "unevenly spaced" warning
        (a,) = load_series(_write(tmp_path, rows)).series
    assert len(a) == 12 and np.isnan(a[5, 0])
    np.testing.assert_array_equal(np.delete(a[:, 0], 5), np.delete(np.arange(12.0), 5))


def test_dates_on_different_days_of_the_month_are_not_taken_as_months(tmp_path) -> None:
    days = ["2024-01-01", "2024-01-15", "2024-02-01", "2024-02-15"]  # twice a month: not whole months
    rows = [dict(id="a", time=d, x=float(k)) for k, d in enumerate(days)]
    with pytest.warns(UserWarning, match="unevenly spaced"):
        (a,) = load_series(_write(tmp_path, rows)).series
    assert a[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_uneven_steps_are_kept_in_order_with_a_warning_naming_the_series(tmp_path) -> None:
    rows = [dict(id="odd", time=t, x=t) for t in (0.0, 0.5, 1.7, 2.0)]
    rows += [dict(id="ok", time=t, x=1.0) for t in range(4)]
    with pytest.warns(UserWarning, match="'odd'"):
        data = load_series(_write(tmp_path, rows))
    np.testing.assert_allclose(data.series[0][:, 0], [0.0, 0.5, 1.7, 2.0])
    rows = [dict(id="ok", time=t, x=1.0) for t in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_series(_write(tmp_path, rows))


def test_an_empty_or_header_only_file_is_named(tmp_path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: empty file"):
        load_series(str(empty))
    header = tmp_path / "header.csv"
    header.write_text("id,time,x,y\n")
    with pytest.raises(ValueError, match=r"header\.csv: has a header but no rows"):
        load_series(str(header))


def test_a_run_with_a_label_reads_new_series_without_that_column(tmp_path) -> None:
    from masklab.recipes.series import run_data

    rows = [dict(id=f"s{i}", time=t, x=float(t)) for i in range(2) for t in range(6)]
    path = _write(tmp_path, rows)
    run = tmp_path / "run"
    run.mkdir()
    (run / "series.json").write_text(json.dumps({"data": path, "label": "cls"}))
    data = run_data(run, path)
    assert data.channels == ("x",) and data.labels is None
    labelled = _write(tmp_path, [dict(r, cls="up") for r in rows], "labelled.csv")
    assert run_data(run, labelled).channels == ("x",)  # the label column, when present, is kept out


def test_forecast_leaves_out_series_whose_history_is_not_observed(tmp_path) -> None:
    from masklab.recipes.series import build_model, holdout_forecast

    rows = [dict(id="a", time=t, x=np.nan if t < 3 else 5.0) for t in range(5)]
    rows += [dict(id=k, time=t, x=float(t % 3)) for k in ("b", "c") for t in range(5)]
    data = load_series(_write(tmp_path, rows))
    model = build_model(data, "series-tiny", patch_len=2, stride=2)
    scores = holdout_forecast(model, data, 2)
    assert scores["series"] == 2 and scores["skipped"] == ["a"] and np.isfinite(scores["mse"])
    only = data.subset([0])
    assert holdout_forecast(model, only, 2) == {"series": 0, "mse": None, "mse_last_value": None, "skipped": ["a"]}


def test_forecast_cli_says_the_real_length_rule_and_names_left_out_series(monkeypatch, capsys) -> None:
    from masklab.cli import main
    from masklab.recipes import series_tasks

    scores = {"series": 2, "mse": 1.0, "mse_last_value": 2.0, "skipped": ["a"], "name": "d.csv", "forecasts": 3}
    monkeypatch.setattr(series_tasks, "forecast_series", lambda *a, **k: dict(scores))
    assert main(["forecast", "run", "--horizon", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 series with more than 3 steps" in out
    assert "left out of the held-out score" in out and "'a'" in out


def test_a_horizon_longer_than_the_model_covers_names_the_flag_and_the_largest(tmp_path, capsys) -> None:
    from masklab.cli import main
    from masklab.recipes.series import load_pretrained

    values = np.sin(np.arange(4 * 30, dtype=np.float32)).reshape(4, 30, 1)
    np.savez(tmp_path / "s.npz", values=values)
    out = tmp_path / "run"
    assert main(["pretrain", "series", "--data", str(tmp_path / "s.npz"), "--preset", "series-tiny", "--steps", "2",
                 "--batch-size", "4", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    cfg = load_pretrained(out).config
    largest = cfg.patch_len + (cfg.max_patches - 1) * cfg.stride - 30
    capsys.readouterr()
    assert main(["forecast", str(out), "--horizon", str(largest + 1), "-o", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err
    assert f"--horizon {largest + 1}" in err and f"at most --horizon {largest}" in err
    assert main(["forecast", str(out), "--horizon", str(largest), "-o", str(tmp_path / "f.npz")]) == 0


def test_numeric_ids_keep_their_numeric_order(tmp_path) -> None:
    rows = [dict(id=i, time=t, x=float(i)) for i in (10, 2, 1) for t in range(3)]
    assert load_series(_write(tmp_path, rows)).ids == ("1", "2", "10")
