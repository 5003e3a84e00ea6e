"""choose_by_timing, the two-way probe both CPU probes share: a forced setting runs nothing, a measured verdict is
cached and read back, and the challenger must beat the default by more than the margin."""

from __future__ import annotations

import json

import pytest

from masklab.core.probe import choose_by_timing, env_setting


class _Clock:
    """Stands in for time_interleaved: runs every arm once, counts the calls, answers made-up seconds."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.calls = 0

    def __call__(self, arms, repeats=3):
        self.calls += 1
        for run in arms.values():
            run()
        return dict(self.seconds)


def _choose(clock: _Clock, setting: str = "auto", **kwargs):
    ran: list[str] = []
    arms = {"slow": lambda: ran.append("slow"), "fast": lambda: ran.append("fast")}
    kwargs.setdefault("key", {"workload": "w"})
    choice = choose_by_timing(
        "test_probe", arms, setting=setting, env_var="MASKLAB_TEST", field="pick", timer=clock, **kwargs
    )
    return choice, ran


def test_a_forced_setting_runs_nothing_and_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    clock = _Clock({"slow": 1.0, "fast": 0.1})
    choice, ran = _choose(clock, setting="slow")
    assert (choice.name, choice.reason) == ("slow", "MASKLAB_TEST=slow (forced)")
    assert clock.calls == 0 and ran == [] and not (tmp_path / "test_probe.json").exists()
    with pytest.raises(ValueError, match="MASKLAB_TEST=other"):
        _choose(clock, setting="other")


def test_the_verdict_is_measured_once_then_read_from_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    clock = _Clock({"slow": 1.0, "fast": 0.5})
    first, ran = _choose(clock, labels={"fast": "FAST"}, margin=0.1)
    assert first.name == "fast" and ran == ["slow", "fast"] and clock.calls == 1
    assert first.reason.startswith("auto: measured now on ")
    assert first.reason.endswith(": FAST 500.0 ms vs slow 1000.0 ms per step (2.00x; fast needs > 10% gain)")
    entry = next(iter(json.loads((tmp_path / "test_probe.json").read_text()).values()))
    assert entry["pick"] == "fast" and entry["slow_s"] == 1.0 and entry["key"]["workload"] == "w"
    clock.seconds = {"slow": 0.1, "fast": 1.0}  # a second measurement would now pick "slow"
    second, ran = _choose(clock)
    assert second.name == "fast" and ran == [] and clock.calls == 1 and "cached probe" in second.reason
    other, _ = _choose(clock, key={"workload": "v"})  # another workload is another key: measured again
    assert other.name == "slow" and clock.calls == 2


def test_without_the_cache_every_call_measures(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    clock = _Clock({"slow": 1.0, "fast": 0.5})
    for _ in range(2):
        assert "measured now" in _choose(clock, use_cache=False)[0].reason
    assert clock.calls == 2 and not (tmp_path / "test_probe.json").exists()


@pytest.mark.parametrize(
    ("fast", "margin", "winner"), [(0.97, 0.05, "slow"), (0.94, 0.05, "fast"), (0.8, 0.25, "slow"), (0.7, 0.25, "fast")]
)
def test_the_challenger_must_win_by_more_than_the_margin(monkeypatch, tmp_path, fast, margin, winner):
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path))
    assert _choose(_Clock({"slow": 1.0, "fast": fast}), margin=margin)[0].name == winner


def test_env_setting_reads_and_checks_the_variable(monkeypatch):
    monkeypatch.delenv("MASKLAB_TEST", raising=False)
    assert env_setting("MASKLAB_TEST", ("a", "b")) == "auto"
    monkeypatch.setenv("MASKLAB_TEST", " B ")
    assert env_setting("MASKLAB_TEST", ("a", "b")) == "b"
    monkeypatch.setenv("MASKLAB_TEST", "c")
    with pytest.raises(ValueError, match=r"^MASKLAB_TEST must be 'a', 'b' or 'auto', got 'c'$"):
        env_setting("MASKLAB_TEST", ("a", "b"))
