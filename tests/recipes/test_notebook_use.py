"""Recipes called from a notebook: a ``pathlib.Path`` works wherever a path string does, and a recipe leaves
torch's global random stream as it found it (training used to reset it to the same state every call)."""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from masklab import recipes


def _table(path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 0] + 0.1 * x[:, 1], "c": x[:, 2]}).to_csv(path, index=False)
    return path


def test_paths_work_as_strings_do(tmp_path):
    data = _table(tmp_path / "t.csv")  # a Path: these raised AttributeError: 'PosixPath' ... 'startswith'
    options = recipes.TrainOptions(steps=2, batch_size=8, device="cpu")
    recipes.pretrain_table(tmp_path / "run", data=data, preset="table-tiny", train=options)
    recipes.score(tmp_path / "run", data, tmp_path / "scores.csv")
    assert len(pd.read_csv(tmp_path / "scores.csv")) == 60


def test_a_recipe_leaves_the_caller_s_random_stream_alone(tmp_path):
    data = _table(tmp_path / "t.csv")
    options = recipes.TrainOptions(steps=2, batch_size=8, device="cpu")
    after = []
    for seed, out in ((1, "r1"), (2, "r2")):
        torch.manual_seed(seed)
        state = torch.get_rng_state()
        recipes.pretrain_table(tmp_path / out, data=str(data), preset="table-tiny", train=options)
        assert torch.equal(torch.get_rng_state(), state)  # as before the call
        after.append(torch.rand(3))
    assert not torch.equal(after[0], after[1])  # the caller's seed still decides what comes next


def test_train_options_load_without_torch():
    import subprocess
    import sys

    code = "import sys; from masklab.recipes import TrainOptions; TrainOptions(steps=3); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr  # it imported torch (3 s)
