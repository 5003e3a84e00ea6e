"""The MAE command line end to end on a tiny preset: pretrain, reconstruct, inpaint, embed, probe, finetune,
bad inputs, and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from masklab.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "6",
                 "--batch-size", "16", "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def test_pretrain_writes_a_run(run):
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "mae" and config["model"]["image_size"] == [8, 8]
    assert config["model"]["patch_size"] == 4 and config["train"]["steps"] == 6
    data = json.loads((run / "data.json").read_text())
    assert data["spec"] == "builtin:digits" and data["num_train"] + data["num_test"] == 1797
    assert data["augment"]["flip"] is False  # digits are not mirror-symmetric
    assert (run / "checkpoint.safetensors").is_file()


def test_reconstruct_held_out_examples(run, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["reconstruct", str(run), "--count", "3", "-o", str(out)]) == 0
    assert "PSNR on hidden pixels" in capsys.readouterr().out
    grid = Image.open(out)
    assert grid.width > grid.height  # 4 columns, 3 rows


def test_reconstruct_image_files(run, tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (16, 16), dtype=np.uint8)).save(paths[-1])
    assert main(["reconstruct", str(run), *map(str, paths), "--mask-ratio", "0.5", "-o", str(tmp_path / "g.png")]) == 0


def test_inpaint(run, tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (24, 24), dtype=np.uint8)
    mask = np.zeros((24, 24), dtype=np.uint8)
    mask[4:10, 6:12] = 255
    Image.fromarray(image).save(tmp_path / "img.png")
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    assert main(["inpaint", str(run), str(tmp_path / "img.png"), "--mask", str(tmp_path / "mask.png"),
                 "-o", str(out)]) == 0  # fmt: skip
    result = np.asarray(Image.open(out))
    assert result.shape == (24, 24)
    keep = mask == 0
    np.testing.assert_array_equal(result[keep], image[keep])  # only the white region changes


def test_embed_is_deterministic(run, tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert main(["embed", str(run), "-o", str(a)]) == 0
    assert main(["embed", str(run), "-o", str(b)]) == 0
    ea = np.load(a)
    assert ea.shape == (1797, 32)
    np.testing.assert_array_equal(ea, np.load(b))


def test_probe_prints_all_baselines(run, capsys):
    assert main(["probe", str(run), "--max-examples", "400"]) == 0
    out = capsys.readouterr().out
    for row in ("MAE encoder", "random encoder", "raw pixels", "linear probe", "20-NN"):
        assert row in out


def test_finetune(run, tmp_path, capsys):
    out = tmp_path / "ft"
    assert main(["finetune", str(run), "--steps", "3", "--batch-size", "16", "--device", "cpu",
                 "--augment", "mask:0.25", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "metrics.json").read_text())
    assert 0 <= result["accuracy"] <= 1 and "test accuracy" in capsys.readouterr().out
    assert main(["embed", str(out), "-o", str(tmp_path / "e.npy")]) == 0  # a fine-tuned run embeds too


def _error(argv, capsys) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_bad_inputs_are_clear_errors(run, tmp_path, capsys):
    base = ["pretrain", "mae", "--preset", "mae-tiny", "--steps", "1", "--out", str(tmp_path / "x")]
    assert "--mask-ratio must be in [0, 1)" in _error([*base, "--data", "builtin:digits", "--mask-ratio", "1"], capsys)
    (tmp_path / "empty").mkdir()
    assert "no images found under" in _error([*base, "--data", str(tmp_path / "empty")], capsys)
    assert "smaller than one 16x16 patch" in _error([*base, "--data", "builtin:digits", "--patch-size", "16"], capsys)
    np.save(tmp_path / "rgb.npy", np.zeros((4, 8, 8, 3), dtype=np.uint8))
    err = _error(["embed", str(run), "--data", str(tmp_path / "rgb.npy"), "-o", str(tmp_path / "e.npy")], capsys)
    assert "has 3-channel images; the model takes 1 channel(s)" in err
    err = _error(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--out", str(run)], capsys)
    assert "already holds a run; pass --resume" in err
    assert "--mask-ratio must be in (0, 1)" in _error(["reconstruct", str(run), "--mask-ratio", "1.0", "-o",
                                                        str(tmp_path / "g.png")], capsys)  # fmt: skip


def test_corrupt_image_is_named_or_skipped(tmp_path, capsys):
    data = tmp_path / "imgs"
    data.mkdir()
    for i in range(20):
        Image.fromarray(np.full((16, 16), i * 10, dtype=np.uint8)).save(data / f"{i}.png")
    (data / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    base = ["pretrain", "mae", "--data", str(data), "--preset", "mae-tiny", "--steps", "1", "--batch-size", "4",
            "--device", "cpu"]  # fmt: skip
    err = _error([*base, "--out", str(tmp_path / "a")], capsys)
    assert "cannot read image" in err and "bad.jpg" in err
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(data / "tiny.png")  # readable, but under one patch
    assert main([*base, "--skip-bad", "--out", str(tmp_path / "b")]) == 0
    out, err = capsys.readouterr()
    assert "2 unreadable skipped" in out  # the files are named, with what can be wrong with them:
    assert "skipped 2 images (--skip-bad; unreadable or smaller than one patch)" in err
    assert "bad.jpg" in err and "tiny.png" in err


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(tmp_path):
    from masklab.train.checkpoint import load_run

    args = ["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "400",
            "--batch-size", "16", "--ckpt-every", "10", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run([sys.executable, "-m", "masklab", *args, "--out", str(full)], check=True, env=env,
                   capture_output=True, timeout=600)  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "masklab", *args, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while not (killed / "checkpoint.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_run(killed).step
    assert 0 < step < 400, f"the kill landed at step {step}; the test needs it mid-run"
    subprocess.run([sys.executable, "-m", "masklab", "pretrain", "mae", "--out", str(killed), "--resume"],
                   check=True, env=env, capture_output=True, timeout=600)  # fmt: skip
    a, b = load_run(full).model_state, load_run(killed).model_state
    assert load_run(killed).step == 400
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)


def test_engine_flags_reach_the_trainer(tmp_path):
    out = tmp_path / "engine"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "2",
                 "--batch-size", "16", "--grad-accum", "2", "--precision", "bf16", "--grad-checkpointing",
                 "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["grad_accum"] == 2 and train["precision"] == "bf16" and train["fsdp"] is False
