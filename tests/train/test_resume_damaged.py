"""A run whose files are damaged: ``--resume`` refuses it before rewriting any file (it rewrote ``arguments.json``
and ``config.json`` and then failed), garbage checkpoints and non-UTF-8 logs or configs are named, and a resume
may change the number of data-loading workers (results do not depend on it)."""

import hashlib
import shutil

import pytest

from masklab.cli import main

TINY = ["--data", "builtin:digits", "--preset", "mae-tiny", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "mae"
    assert main(["pretrain", "mae", *TINY, "--steps", "3", "--out", str(run)]) == 0
    return run


def _copy(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def _digests(run):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.iterdir()) if p.is_file()}


def _damage_checkpoint_truncated(run):
    data = (run / "checkpoint.safetensors").read_bytes()
    (run / "checkpoint.safetensors").write_bytes(data[: len(data) // 2])
    return "truncated"


def _damage_checkpoint_garbage(run):  # its first 8 bytes declare a header longer than any file (OverflowError)
    (run / "checkpoint.safetensors").write_bytes(b"\xff" * 8 + bytes(range(256)) * 40)
    return "bad header"


def _damage_metrics_bytes(run):
    (run / "metrics.jsonl").write_bytes(b"\xff\xfe x\n")
    return "metrics.jsonl: not a metrics log"


@pytest.mark.parametrize("damage", [_damage_checkpoint_truncated, _damage_checkpoint_garbage, _damage_metrics_bytes])
def test_a_resume_that_cannot_load_the_run_rewrites_nothing(damage, trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    expected = damage(run)
    before = _digests(run)
    assert main(["pretrain", "mae", "--out", str(run), "--resume", "--steps", "50"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err, err
    assert _digests(run) == before  # arguments.json and config.json still say 3 steps


def test_info_names_a_metrics_log_that_is_not_text(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    _damage_metrics_bytes(run)
    assert main(["info", str(run)]) == 2
    assert f"{run / 'metrics.jsonl'}: not a metrics log (byte 0 is not UTF-8 text)" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b'{"kind": "mae", "model": {'])
def test_a_config_that_is_not_json_is_named(content, trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    (run / "config.json").write_bytes(content)
    assert main(["reconstruct", str(run), "-o", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.json'}: not valid JSON" in err or f"{run / 'config.json'}: not a masklab" in err, err
    assert not (tmp_path / "grid.png").exists()


def test_a_resume_may_change_the_data_loading_workers(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    assert main(["pretrain", "mae", "--out", str(run), "--resume", "--steps", "4", "--workers", "1"]) == 0, (
        capsys.readouterr().err
    )


def test_info_shows_a_loss_that_is_not_a_number_as_written(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    (run / "metrics.jsonl").write_text('{"step": 3, "loss": "NaN"}\n')
    assert main(["info", str(run)]) == 0
    assert "last loss    'NaN' at step 3" in capsys.readouterr().out


def test_a_config_that_does_not_describe_the_weights_is_one_line(trained, tmp_path, capsys):
    import json

    run = _copy(trained, tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["model"]["dim"] *= 2
    (run / "config.json").write_text(json.dumps(config))
    assert main(["reconstruct", str(run), "-o", str(tmp_path / "grid.png")]) == 2
    err = capsys.readouterr().err
    ckpt = run / "checkpoint.safetensors"
    assert f"{ckpt} does not hold the weights of the 'mae' model config.json describes: " in err
    assert "tensor(s) of another shape (e.g. " in err and len(err.strip().splitlines()) <= 2, err  # not torch's list


def test_a_refused_resume_names_the_flags_that_changed(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path)
    assert main(["pretrain", "mae", "--out", str(run), "--resume", "--mask-ratio", "0.5", "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "model.mask_ratio: recorded 0.75, given 0.5" in err  # the differing keys, as before
    assert err.rstrip().endswith("flags given that differ from the run's arguments: --mask-ratio 0.5 (recorded "
                                 "0.75)"), err  # fmt: skip
