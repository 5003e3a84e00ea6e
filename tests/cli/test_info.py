"""The command line: ``--version`` and ``masklab info`` on a real (tiny) training run."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from masklab import __version__
from masklab.cli import main
from masklab.core.contract import LossOutput
from masklab.train import TrainConfig, fit


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def training_loss(self, batch, generator):
        x, y = batch
        return LossOutput(F.mse_loss(self.lin(x).squeeze(-1), y))


class _Data:
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    y = x.sum(-1)

    def __len__(self):
        return len(self.x)

    def get_batch(self, indices, generator):
        return self.x[indices], self.y[indices]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(steps=4, batch_size=8, log_every=2, device="cpu")
    fit(_Regressor(), _Data(), cfg, out, model_config={"kind": "regressor", "width": 3}, progress=False)
    return out


def test_version_subprocess():
    result = subprocess.run([sys.executable, "-m", "masklab", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"masklab {__version__}"


def test_info_text(run_dir, capsys):
    assert main(["info", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "kind         regressor" in out
    assert "step         4 / 4" in out
    assert "parameters   4 in 2 tensors" in out  # 3 weights + 1 bias
    assert "float32 x2" in out and "last loss" in out and '"width": 3' in out


def test_info_json(run_dir, capsys):
    assert main(["info", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "regressor" and info["step"] == 4 and info["total_steps"] == 4
    assert info["num_parameters"] == 4 and info["num_tensors"] == 2 and info["dtypes"] == {"float32": 2}
    assert info["checkpoint_bytes"] == (run_dir / "checkpoint.safetensors").stat().st_size
    assert info["model"] == {"kind": "regressor", "width": 3} and info["train"]["batch_size"] == 8
    assert info["metrics"]["records"] == 2 and info["metrics"]["last"]["step"] == 4


def test_info_leaves_out_records_past_the_checkpoint(run_dir, tmp_path, capsys):
    # A run stopped at once (two quick Ctrl-C) can have logged a step its checkpoint does not hold: info
    # described that step's loss as the run's. Now it describes the checkpoint's steps and counts the rest.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with (run / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 6, "loss": 123.0}) + "\n")
    assert main(["info", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["records"] == 2 and metrics["last"]["step"] == 4 and metrics["past_checkpoint"] == 1
    assert metrics["min_loss"] < 123.0
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "at step 4 (min" in out and "1 record(s) of later steps left out: the checkpoint holds step 4" in out


def test_info_bad_directories(tmp_path, capsys):
    assert main(["info", "/nonexistent/run"]) == 2
    assert capsys.readouterr().err.strip() == "masklab: error: run directory /nonexistent/run does not exist"
    assert main(["info", str(tmp_path)]) == 2
    assert "is not a masklab run: it has no config.json" in capsys.readouterr().err


def test_info_corrupted_checkpoint(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((run_dir / "config.json").read_bytes())
    data = (run_dir / "checkpoint.safetensors").read_bytes()
    (broken / "checkpoint.safetensors").write_bytes(data[: len(data) - 10])
    assert main(["info", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: ") and "truncated" in err and "checkpoint.safetensors" in err


def test_info_describes_a_saved_table_estimator(tmp_path, capsys):
    # `masklab score DET` takes a saved detector; `info` said "not a masklab run: it has no config.json".
    import numpy as np
    from safetensors import safe_open

    from masklab.estimators import MaskedAnomalyDetector

    x = np.random.default_rng(0).normal(size=(64, 3))
    detector = MaskedAnomalyDetector(preset="table-tiny", steps=4, batch_size=16, random_state=0).fit(x)
    detector.save(tmp_path / "det")
    assert main(["info", str(tmp_path / "det")]) == 0
    text = capsys.readouterr().out
    with safe_open(str(tmp_path / "det" / "model.safetensors"), framework="pt") as f:
        n_model = sum(f.get_tensor(k).numel() for k in f.keys() if k.startswith("model."))  # noqa: SIM118
    n_torch = sum(p.numel() for p in detector.model_.state_dict().values())
    assert n_model == n_torch
    assert "MaskedAnomalyDetector" in text and f"parameters   {n_torch:,} in" in text and "also reference" in text
    assert f"threshold    {detector.threshold_:.6g}" in text and "features     3 (unnamed)" in text
    assert main(["info", str(tmp_path / "det"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "estimator" and info["steps"] == 4 and info["num_parameters"] == n_torch
    weights = tmp_path / "det" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # damaged: a clear error naming the file, not a traceback
    assert main(["info", str(tmp_path / "det")]) == 2
    assert f"{weights}: bad header" in capsys.readouterr().err
