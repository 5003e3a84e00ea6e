"""Checkpoint files: round trip, atomic writes, and clear errors for every kind of damage."""

import json
import os
from pathlib import Path

import pytest
import torch

from masklab.core.io import CheckpointError, atomic_write_bytes, atomic_write_json, load_checkpoint, save_checkpoint
from masklab.train import load_run


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "model.w": torch.randn(40, 25, generator=g),
        "model.half": torch.randn(7, generator=g).to(torch.bfloat16),
        "optim.0.step": torch.tensor(3.0),
        "ids": torch.arange(5),
        "rng.state": torch.randint(0, 255, (16,), dtype=torch.uint8, generator=g),
        "empty": torch.zeros(0, 3),
    }


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "ck.safetensors"
    save_checkpoint(path, _tensors(), {"step": "7"})
    return path


def test_roundtrip_is_exact(saved):
    tensors, metadata = load_checkpoint(saved)
    expected = _tensors()
    assert tensors.keys() == expected.keys()
    for name, value in expected.items():
        assert tensors[name].dtype == value.dtype and torch.equal(tensors[name], value), name
    assert metadata["step"] == "7" and len(metadata["sha256"]) == 64
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]  # no temp files left


def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(saved)
    assert str(saved) in str(info.value)


def test_flipped_byte_fails_the_hash(saved):
    data = bytearray(saved.read_bytes())
    data[-1] ^= 0x01  # the last byte belongs to the last tensor's data
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="integrity check failed") as info:
        load_checkpoint(saved)
    assert str(saved) in str(info.value)
    tensors, _ = load_checkpoint(saved, verify=False)  # the caller may opt out of the check
    assert len(tensors) == len(_tensors())


@pytest.mark.parametrize(
    "content", [b"", b"abc", os.urandom(4096), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......"]
)
def test_garbage_file(tmp_path, content):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"too small|bad header|truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as info:
        load_checkpoint(tmp_path / "nope.safetensors")
    assert "nope.safetensors" in str(info.value)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_foreign_safetensors_without_hash(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="no 'sha256' integrity hash"):
        load_checkpoint(path)
    assert torch.equal(load_checkpoint(path, verify=False)[0]["x"], torch.ones(2))


def test_metadata_must_be_strings(tmp_path):
    with pytest.raises(ValueError, match="str to str"):
        save_checkpoint(tmp_path / "x.safetensors", {"x": torch.ones(1)}, {"step": 3})
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.safetensors", {"x": torch.ones(1)}, {"sha256": "abc"})


def test_interrupted_write_keeps_the_old_file(saved, monkeypatch):
    before = saved.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(saved, {"x": torch.ones(3)}, {})
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_atomic_writes(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"b": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"b": [1, 2]}
    atomic_write_bytes(tmp_path / "sub" / "c.bin", b"xyz")
    assert (tmp_path / "sub" / "c.bin").read_bytes() == b"xyz"
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        atomic_write_json(tmp_path / "d.json", {"x": object()})
    assert not (tmp_path / "d.json").exists()


def test_load_run_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_run(tmp_path / "file")
    with pytest.raises(CheckpointError, match=r"not a masklab run: it has no config\.json"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a masklab run config"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"kind": "tiny", "model": {}}')
    with pytest.raises(CheckpointError, match=r"has no checkpoint\.safetensors"):
        load_run(tmp_path)
    save_checkpoint(tmp_path / "checkpoint.safetensors", {"model.w": torch.ones(2), "optim.0.step": torch.ones(())}, {})
    run = load_run(tmp_path)
    assert list(run.model_state) == ["w"] and run.config["kind"] == "tiny"


def test_an_atomic_write_onto_a_directory_names_the_directory(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(IsADirectoryError, match=r"out\.png") as err:
        atomic_write_bytes(tmp_path / "out.png", b"x")
    assert ".tmp" not in str(err.value) and sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_an_atomic_write_where_no_file_can_be_made_names_the_path():
    # /proc takes no new files (not even root's): the error named the internal temp file /proc/.x.png.<hex>.tmp
    with pytest.raises(OSError) as err:
        atomic_write_bytes("/proc/x.png", b"x")
    assert err.value.filename == "/proc/x.png" and ".tmp" not in str(err.value)
    assert "cannot write a file in /proc" in str(err.value)


def test_a_checkpoint_gets_the_permissions_of_any_other_file(tmp_path):
    save_checkpoint(tmp_path / "c.safetensors", {"w": torch.zeros(2)}, {})
    (tmp_path / "other.json").write_text("{}")  # the umask decides, as for a plain open()
    assert (tmp_path / "c.safetensors").stat().st_mode & 0o777 == (tmp_path / "other.json").stat().st_mode & 0o777
