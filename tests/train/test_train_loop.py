"""The training loop: batching helpers, a tiny end-to-end fit, in-process resume and run-dir guards."""

import dataclasses
import json
import signal
import sys
from collections import namedtuple

import pytest
import torch
from train_tiny import TinyData, TinyModel, make_config

from masklab.core.contract import LossOutput
from masklab.core.io import load_checkpoint
from masklab.train import EpochSampler, TrainConfig, fit, load_run, move_to
from masklab.train.progress import read_metrics

TIMING_KEYS = {"samples_per_s", "elapsed_s"}


@dataclasses.dataclass(frozen=True)
class _Pair:
    a: torch.Tensor
    label: str


def test_move_to_walks_containers():
    Point = namedtuple("Point", "x y")
    batch = {"x": torch.ones(2), "nested": [torch.zeros(1), (torch.ones(3), "keep")], "p": Point(torch.ones(1), 3)}
    batch["pair"] = _Pair(torch.ones(2), "name")
    moved = move_to(batch, "meta")
    assert moved["x"].device.type == "meta"
    assert isinstance(moved["nested"], list) and isinstance(moved["nested"][1], tuple)
    assert moved["nested"][0].device.type == "meta" and moved["nested"][1][1] == "keep"
    assert isinstance(moved["p"], Point) and moved["p"].x.device.type == "meta" and moved["p"].y == 3
    assert isinstance(moved["pair"], _Pair) and moved["pair"].a.device.type == "meta"
    assert moved["pair"].label == "name" and batch["x"].device.type == "cpu"  # the input is untouched


def test_sampler_rolls_over_and_visits_each_example_once_per_epoch():
    sampler = EpochSampler(10, seed=3)
    seen = torch.cat([sampler.next_indices(4) for _ in range(10)])  # 40 indices = 4 epochs, batches of 4
    for epoch in range(4):
        chunk = seen[epoch * 10 : (epoch + 1) * 10]
        expected = torch.randperm(10, generator=torch.Generator().manual_seed(3 * 1_000_003 + epoch))
        assert torch.equal(chunk, expected)
    assert sampler.state_dict() == {"epoch": 4, "cursor": 0}
    resumed = EpochSampler(10, seed=3)
    sampler.next_indices(3)
    resumed.load_state_dict(sampler.state_dict())
    assert torch.equal(resumed.next_indices(7), sampler.next_indices(7))


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises(ValueError, match=r"batch_size=32 .*\(20 examples\)"):
        fit(TinyModel(), TinyData(n=20), make_config(batch_size=32), tmp_path, model_config={"kind": "t"})


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"batch_size": 10, "grad_accum": 3}, "divisible by grad_accum"),
        ({"device": "gpu"}, "device must be"),
        ({"precision": "fp8"}, "precision must be"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"lr": float("inf")}, "lr must be >= 0 and finite, got inf"),
        ({"lr": float("nan")}, "lr must be >= 0 and finite"),
        ({"weight_decay": float("inf")}, "weight_decay must be"),
        ({"max_seconds": float("inf")}, "max_seconds"),
    ],
)
def test_train_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_train_config_json_roundtrip():
    cfg = TrainConfig(betas=(0.8, 0.99), grad_clip=None)
    assert TrainConfig.from_dict(json.loads(json.dumps(dataclasses.asdict(cfg)))) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"stepz": 3})


def _run(out_dir, *, fail_at=None, resume=False, **overrides):
    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()

    def on_step(step, values):
        assert set(values) == {"loss", "lr", "grad_norm", "masked_frac"}
        if step == fail_at:
            raise KeyboardInterrupt  # stands in for a crash between checkpoints

    cfg = make_config(**overrides)
    result = fit(model, data, cfg, out_dir, model_config=model.config(), resume=resume, progress=False, on_step=on_step)
    return model, data, result


def test_fit_writes_a_complete_run(tmp_path):
    model, data, result = _run(tmp_path, steps=30, grad_accum=2)
    assert result.step == 30 and result.last_metrics["step"] == 30
    assert set(data.batch_sizes) == {8}  # batch_size 16 split into 2 micro-batches
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.safetensors",
        "config.json",
        "metrics.jsonl",
    ]  # fit does not plot: loss.png is the recipes' (masklab.viz.curves.write_run_loss_plot)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "tiny-test" and config["model"] == model.config()
    assert TrainConfig.from_dict(config["train"]) == make_config(steps=30, grad_accum=2)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    assert set(records[0]) == {"step", "loss", "lr", "grad_norm", "samples_per_s", "elapsed_s", "masked_frac"}
    assert records[-1]["loss"] < records[0]["loss"]
    tensors, metadata = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert metadata["step"] == "30" and {"sampler_epoch", "sampler_cursor", "optim_param_groups"} <= set(metadata)
    assert {"rng.torch_cpu", "rng.loop_generator", "optim.0.exp_avg", "optim.0.exp_avg_sq", "optim.0.step"} <= set(
        tensors
    )
    assert tensors["rng.torch_cpu"].dtype == torch.uint8
    run = load_run(tmp_path)
    assert run.step == 30
    for name, value in model.state_dict().items():
        assert torch.equal(run.model_state[name], value)


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    _run(tmp_path / "ref", steps=30, ckpt_every=10, log_every=3)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "crash", steps=30, ckpt_every=10, log_every=3, fail_at=17)
    assert load_checkpoint(tmp_path / "crash" / "checkpoint.safetensors")[1]["step"] == "10"
    assert max(r["step"] for r in read_metrics(tmp_path / "crash" / "metrics.jsonl")) == 15
    _run(tmp_path / "crash", steps=30, ckpt_every=10, log_every=3, resume=True)

    ref, _ = load_checkpoint(tmp_path / "ref" / "checkpoint.safetensors")
    resumed, _ = load_checkpoint(tmp_path / "crash" / "checkpoint.safetensors")
    assert ref.keys() == resumed.keys()
    for name in ref:  # weights, AdamW moments and RNG states
        assert torch.equal(ref[name], resumed[name]), name

    def strip(path):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(path)]

    assert strip(tmp_path / "crash" / "metrics.jsonl") == strip(tmp_path / "ref" / "metrics.jsonl")


def test_run_directory_guards(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        _run(tmp_path, steps=5, resume=True)
    _run(tmp_path, steps=5)
    with pytest.raises(ValueError, match="already holds a run"):
        _run(tmp_path, steps=5)
    with pytest.raises(ValueError, match="different model"):
        fit(TinyModel(hidden=16), TinyData(), make_config(steps=5), tmp_path,
            model_config=TinyModel(hidden=16).config(), resume=True, progress=False)  # fmt: skip
    # Resuming a finished run is a no-op that still reports the last record.
    _, _, result = _run(tmp_path, steps=5, resume=True)
    assert result.step == 5 and result.last_metrics["step"] == 5


def test_one_record_loss_plot_marks_the_value(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from masklab.viz.curves import plot_loss_curve

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 2.345, "lr": 1e-3}) + "\n")
    notes = []
    original = Axes.annotate
    monkeypatch.setattr(
        Axes, "annotate", lambda self, text, *a, **k: notes.append(text) or original(self, text, *a, **k)
    )
    plot_loss_curve(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    assert notes == ["2.345"] and (tmp_path / "loss.png").stat().st_size > 0


def test_missing_matplotlib_does_not_fail_training(tmp_path, monkeypatch):
    from masklab.viz.curves import write_run_loss_plot

    _run(tmp_path, steps=5)
    assert write_run_loss_plot(tmp_path) is None and (tmp_path / "loss.png").is_file()
    (tmp_path / "loss.png").unlink()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert write_run_loss_plot(tmp_path) == "masklab: matplotlib is not installed; skipping loss.png"
    assert not (tmp_path / "loss.png").exists()


def test_training_loss_contract(tmp_path):
    class NoLossOutput(TinyModel):
        def training_loss(self, batch, generator):
            return super().training_loss(batch, generator).loss

    class ClashingMetric(TinyModel):
        def training_loss(self, batch, generator):
            return LossOutput(super().training_loss(batch, generator).loss, {"lr": 1.0})

    with pytest.raises(TypeError, match="must return LossOutput"):
        fit(NoLossOutput(), TinyData(), make_config(), tmp_path / "a", model_config={"kind": "t"}, progress=False)
    with pytest.raises(ValueError, match="loop's names"):
        fit(ClashingMetric(), TinyData(), make_config(), tmp_path / "b", model_config={"kind": "t"}, progress=False)
    with pytest.raises(ValueError, match="'kind'"):
        fit(TinyModel(), TinyData(), make_config(), tmp_path / "c", model_config={"dim": 3})


def test_bf16_autocast_on_cpu(tmp_path):
    seen = []

    class Recording(TinyModel):
        def training_loss(self, batch, generator):
            seen.append(self.inp(batch["x"]).dtype)  # inside the loop's autocast region
            return super().training_loss(batch, generator)

    model = Recording()
    fit(model, TinyData(), make_config(steps=3, precision="bf16"), tmp_path, model_config={"kind": "t"}, progress=False)
    assert seen == [torch.bfloat16] * 3
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_non_finite_loss_stops_before_checkpointing(tmp_path):
    class Exploding(TinyModel):
        def training_loss(self, batch, generator):
            out = super().training_loss(batch, generator)
            return LossOutput(out.loss * float("nan"))

    with pytest.raises(FloatingPointError, match="loss became nan by step 5"):
        fit(Exploding(), TinyData(), make_config(), tmp_path, model_config={"kind": "t"}, progress=False)
    assert not (tmp_path / "checkpoint.safetensors").exists()


def test_non_finite_loss_names_the_step_the_checkpoint_really_holds(tmp_path):
    class ExplodingLater(TinyModel):
        explode = False

        def training_loss(self, batch, generator):
            out = super().training_loss(batch, generator)
            return LossOutput(out.loss * (float("nan") if self.explode else 1.0))

    model = ExplodingLater()

    def after(step: int, values: dict) -> None:
        model.explode = step >= 12  # steps 13.. diverge; the checkpoint of step 10 is the last good one

    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(FloatingPointError, match=rf"loss became nan by step 15; {ckpt} holds step 10"):
        fit(model, TinyData(), make_config(), tmp_path, model_config={"kind": "t"}, progress=False, on_step=after)
    assert load_checkpoint(ckpt)[1]["step"] == "10"


def test_deadline_stops_in_time_and_is_not_recorded(tmp_path):
    import time

    model = TinyModel()
    cfg = make_config(steps=100_000, max_seconds=60.0, deadline=time.monotonic() + 1.5)
    result = fit(model, TinyData(), cfg, tmp_path, model_config=model.config(), progress=False)
    assert time.monotonic() < cfg.deadline + 0.5 and 0 < result.step < cfg.steps
    assert load_checkpoint(result.checkpoint_path)[1]["stop_reason"] == "time budget"
    assert "deadline" not in json.loads((tmp_path / "config.json").read_text())["train"]


def test_time_budget_stops_checkpoints_and_finishes_the_schedule(tmp_path):
    model = TinyModel()
    seen: list[tuple[int, float]] = []
    cfg = TrainConfig(steps=100_000, batch_size=16, lr=1e-2, warmup_steps=10, log_every=5, max_seconds=1.0)
    result = fit(
        model,
        TinyData(),
        cfg,
        tmp_path,
        model_config=model.config(),
        progress=False,
        on_step=lambda step, values: seen.append((step, values["lr"])),
    )
    assert 0 < result.step < cfg.steps
    assert load_checkpoint(result.checkpoint_path)[1]["step"] == str(result.step)
    # The schedule follows the budget: it reaches its end (min_lr) in time, not after 100k steps.
    assert seen[-1][1] < 0.05 * cfg.lr
    with pytest.raises(ValueError, match="max_seconds"):
        TrainConfig(max_seconds=0)


def test_fp16_uses_a_grad_scaler_and_checkpoints_it(tmp_path):
    model = TinyModel(dropout=0.0)
    cfg = make_config(steps=4, precision="fp16", ckpt_every=2)
    result = fit(model, TinyData(), cfg, tmp_path, model_config=model.config(), progress=False)
    scaler_state = json.loads(load_checkpoint(result.checkpoint_path)[1]["grad_scaler"])
    assert scaler_state["scale"] > 0  # an enabled scaler with its loss scale saved for resume
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    eager, compiled = TinyModel(dropout=0.0), TinyModel(dropout=0.0)
    compiled.load_state_dict(eager.state_dict())
    fit(eager, TinyData(), make_config(steps=3), tmp_path / "eager", model_config=eager.config(), progress=False)
    fit(compiled, TinyData(), make_config(steps=3, compile=True), tmp_path / "compiled",
        model_config=compiled.config(), progress=False)  # fmt: skip
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)


def test_worker_processes_build_the_same_batches(tmp_path):
    """Batches built in 2 DataLoader workers (grad_accum 2, crash + resume mid-epoch) == built in-process."""
    _run(tmp_path / "ref", steps=12, grad_accum=2, ckpt_every=4)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "w", steps=12, grad_accum=2, ckpt_every=4, workers=2, fail_at=7)
    _run(tmp_path / "w", steps=12, grad_accum=2, ckpt_every=4, workers=2, resume=True)
    ref, _ = load_checkpoint(tmp_path / "ref" / "checkpoint.safetensors")
    got, _ = load_checkpoint(tmp_path / "w" / "checkpoint.safetensors")
    for name in ref:
        assert torch.equal(ref[name], got[name]), name


def test_seed_global_rng_gives_dropout_the_draws_of_manual_seed():
    from masklab.train.batches import seed_global_rng

    x = torch.ones(1000)
    torch.manual_seed(123)
    expected = torch.nn.functional.dropout(x, 0.5)
    torch.manual_seed(7)  # another state first: seeding must replace it
    seed_global_rng(123, torch.device("cpu"))
    assert torch.equal(torch.nn.functional.dropout(x, 0.5), expected)


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, whatever the process inherited: a job started in the
    background by a shell without job control inherits SIGINT ignored, and then no stop is installed (by design:
    masklab leaves a handler it did not expect alone)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_finishes_the_step_checkpoints_it_and_resumes_bit_identically(tmp_path, python_sigint):
    import signal

    from masklab.train.loop import TrainingInterrupted

    _run(tmp_path / "ref", steps=30, ckpt_every=100, log_every=3)
    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()

    def press_ctrl_c(step, values):
        if step == 7:
            signal.raise_signal(signal.SIGINT)  # as a terminal's Ctrl-C: the handler runs in this (main) thread

    cfg = make_config(steps=30, ckpt_every=100, log_every=3)  # no checkpoint before the press
    with pytest.raises(TrainingInterrupted, match=r"interrupted at step 7; .*checkpoint.safetensors holds step 7"):
        fit(model, data, cfg, tmp_path / "run", model_config=model.config(), progress=False, on_step=press_ctrl_c)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Python's own handler is back
    assert load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")[1]["step"] == "7"  # nothing lost
    _run(tmp_path / "run", steps=30, ckpt_every=100, log_every=3, resume=True)
    ref, _ = load_checkpoint(tmp_path / "ref" / "checkpoint.safetensors")
    resumed, _ = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    for name in ref:  # weights, AdamW moments and RNG states
        assert torch.equal(ref[name], resumed[name]), name


def test_a_second_ctrl_c_stops_at_once(python_sigint):
    import signal

    from masklab.train.interrupt import GracefulStop

    said = []
    with GracefulStop(said.append) as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested and len(said) == 1 and "press it again to stop at once" in said[0]
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with GracefulStop(said.append, enabled=False) as off, pytest.raises(KeyboardInterrupt):  # torchrun ranks
        signal.raise_signal(signal.SIGINT)  # keep Python's handling
    assert not off.requested


def test_a_command_that_cannot_resume_says_to_start_again(tmp_path, python_sigint):
    import signal

    from masklab.train.loop import TrainingInterrupted

    torch.manual_seed(0)
    model, data = TinyModel(), TinyData()

    def press_ctrl_c(step, values):
        if step == 3:
            signal.raise_signal(signal.SIGINT)

    cfg = make_config(steps=30, ckpt_every=100)
    with pytest.raises(TrainingInterrupted) as err:  # segment train and finetune have no --resume
        fit(model, data, cfg, tmp_path, model_config=model.config(), progress=False, on_step=press_ctrl_c,
            resumable=False)  # fmt: skip
    assert "holds step 3 (this command does not resume" in str(err.value) and "--resume" not in str(err.value)
    assert f"delete {tmp_path} and run it again to start over, or give it another --out" in str(err.value)
    with pytest.raises(ValueError, match=r"already holds a run .*; pick another --out, or delete it to start again"):
        fit(model, data, cfg, tmp_path, model_config=model.config(), progress=False, resumable=False)
