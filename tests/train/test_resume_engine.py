"""What a resume may change and what it must keep: the CPU kernels the run trained with (recorded in the
checkpoint, reapplied on resume), the number of micro-batches per step (processes x grad_accum), and DataLoader
workers that leave Ctrl-C to the main process."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from train_tiny import TinyData, TinyModel, make_config

from masklab.core.contract import saved_config
from masklab.core.io import load_checkpoint
from masklab.core.probe import TimedChoice
from masklab.models.clm import GPT, GPTConfig
from masklab.nn import cpu_attention_probe, cpu_linear_probe
from masklab.nn.cpu_linear import Linear
from masklab.train import fit
from masklab.train.run import Run

FORCED = {"MASKLAB_CPU_LINEAR": "onednn", "MASKLAB_CPU_ATTENTION": "bmm"}


class _Ids:
    """Fixed random token rows for a tiny GPT (no randomness in get_batch)."""

    def __init__(self) -> None:
        self.ids = torch.randint(0, 50, (64, 33), generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.ids)

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> dict:
        return {"ids": self.ids[indices]}


def _fit_gpt(out, *, resume=False, stop_at=None, steps=6):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context=32, dim=64, depth=1, heads=2))

    def on_step(step, values):
        if step == stop_at:
            raise KeyboardInterrupt  # a crash after the step-3 checkpoint

    cfg = make_config(steps=steps, batch_size=8, ckpt_every=3, log_every=1, precision="fp32")
    fit(model, _Ids(), cfg, out, model_config=saved_config(model), resume=resume, progress=False, on_step=on_step)
    return model


def _probes_pick_the_default(monkeypatch, tmp_path):
    """This machine's probes decide differently: unforced, they keep the default arm (torch GEMM, SDPA)."""
    monkeypatch.setenv("MASKLAB_CACHE_DIR", str(tmp_path / "cache"))
    for name in FORCED:
        monkeypatch.delenv(name, raising=False)

    def default_arm(kind, arms, *, setting, env_var, **_):
        name = setting if setting != "auto" else next(iter(arms))
        return TimedChoice(name, f"{env_var}={setting}" if setting != "auto" else "auto: stand-in probe")

    for module in (cpu_linear_probe, cpu_attention_probe):
        monkeypatch.setattr(module, "choose_by_timing", default_arm)


def _assert_same_checkpoints(a, b):
    ref, _ = load_checkpoint(a / "checkpoint.safetensors")
    got, _ = load_checkpoint(b / "checkpoint.safetensors")
    assert ref.keys() == got.keys()
    differ = [name for name in ref if not torch.equal(ref[name], got[name])]
    assert not differ, f"{len(differ)} of {len(ref)} tensors differ, e.g. {differ[:3]}"


def test_resume_reapplies_the_cpu_kernels_the_run_trained_with(tmp_path, monkeypatch):
    for name, value in FORCED.items():
        monkeypatch.setenv(name, value)
    _fit_gpt(tmp_path / "ref")
    with pytest.raises(KeyboardInterrupt):
        _fit_gpt(tmp_path / "run", stop_at=4)
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert json.loads(meta["cpu_kernels"]) == {"precision": "fp32", "gemm": "onednn", "attention": "bmm"}
    _probes_pick_the_default(monkeypatch, tmp_path)  # resumed where the probes would choose torch and SDPA
    model = _fit_gpt(tmp_path / "run", resume=True)
    _assert_same_checkpoints(tmp_path / "ref", tmp_path / "run")
    assert all(type(m) is not Linear for m in model.modules())  # handed back plain


def test_a_forced_kernel_on_resume_wins_with_a_warning(tmp_path, monkeypatch):
    for name, value in FORCED.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(KeyboardInterrupt):
        _fit_gpt(tmp_path / "run", stop_at=4)
    _probes_pick_the_default(monkeypatch, tmp_path)
    monkeypatch.setenv("MASKLAB_CPU_ATTENTION", "sdpa")
    with pytest.warns(UserWarning, match=r"MASKLAB_CPU_ATTENTION=sdpa .*bmm.* not be bit-identical") as said:
        _fit_gpt(tmp_path / "run", resume=True)
    assert not [w for w in said if "MASKLAB_CPU_LINEAR" in str(w.message)]  # the GEMM stayed as recorded
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors")
    assert json.loads(meta["cpu_kernels"]) == {"precision": "fp32", "gemm": "onednn", "attention": "sdpa"}


def _tiny(out, *, resume=False, stop_at=None, **overrides):
    torch.manual_seed(0)
    model = TinyModel()

    def on_step(step, values):
        if step == stop_at:
            raise KeyboardInterrupt

    cfg = make_config(steps=6, ckpt_every=3, **overrides)
    fit(model, TinyData(), cfg, out, model_config=model.config(), resume=resume, progress=False, on_step=on_step)
    return cfg


def test_resume_refuses_a_grad_accum_that_changes_the_micro_batches(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _tiny(tmp_path, stop_at=4)
    _, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert (meta["world_size"], meta["grad_accum"]) == ("1", "1")
    match = r"--grad-accum 2 .*2 micro-batches per step.*trained with 1 \(1 process\(es\) x grad_accum 1\)"
    with pytest.raises(ValueError, match=match):
        _tiny(tmp_path, resume=True, grad_accum=2)
    # The recipes' early check (before any data is prepared) says the same.
    cfg = make_config(steps=6, ckpt_every=3, grad_accum=2)
    config = {"kind": "tiny-test", "model": TinyModel().config(), "train": cfg.to_dict()}
    with pytest.raises(ValueError, match=match):
        Run(tmp_path).check_resume(config)
    _tiny(tmp_path, resume=True)  # the same grad_accum resumes
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")[1]["step"] == "6"


class _SigintHandler:
    """``get_batch`` answers whether SIGINT is ignored in the process that builds the batch."""

    def __len__(self) -> int:
        return 8

    def get_batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.tensor(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)


def test_dataloader_workers_leave_ctrl_c_to_the_main_process():
    from masklab.train.batches import BatchSource, EpochSampler, micro_seed

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as an interactive shell starts us
    try:
        source = BatchSource(_SigintHandler(), workers=1)
        cfg = make_config(steps=1, batch_size=8)
        sampler = EpochSampler(8, cfg.seed)
        source.start(cfg, sampler, 0, 0, 1)
        ignored = source.get(sampler.next_indices(8), micro_seed(cfg.seed, 0, 0), torch.Generator())
        source.close()
        assert bool(ignored), "a DataLoader worker still takes Ctrl-C itself"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the main process keeps its own
    finally:
        signal.signal(signal.SIGINT, before)
