"""Where ``masklab export-hf RUN DIR`` may write: a new or empty folder, or an earlier export of the same class
(replaced, with a note). A masklab run, prepared data, another class's export, a Hugging Face folder masklab
did not write and unrelated files are refused before anything is written, naming the folder and what it holds.
Runs are made without training (a model's initial weights saved as a run)."""

import json

import pytest
from safetensors.torch import load_file, save_file

from masklab.cli import main
from masklab.core.contract import saved_config
from masklab.core.io import save_checkpoint
from masklab.models.clm import GPT
from masklab.models.mae import MAE
from masklab.models.mlm import BertConfig, BertForMLM, MLMConfig
from masklab.tokenizers.text import TextTokenizer

TEXTS = ["the bank and the team.", "a goal for the coach.", "shares in the market."]


def make_run(path, model, tokenizer=None):
    """A run directory holding ``model``'s current weights (what ``Run.load_model`` reads)."""
    path.mkdir(parents=True)
    config = {"kind": model.kind, "model": saved_config(model), "train": {}}
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    tensors = {f"model.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint(path / "checkpoint.safetensors", tensors, {"step": "0"})
    if tokenizer is not None:
        tokenizer.save(path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    tok = TextTokenizer.train(TEXTS, "char")
    bert = BertConfig(vocab_size=tok.vocab_size, dim=16, depth=1, heads=2, intermediate=32, pad_id=tok.pad_id)
    mlm = BertForMLM(MLMConfig(bert=bert, mask_id=tok.mask_id, special_ids=tok.special_ids))
    gpt = GPT.from_preset("gpt-tiny", vocab_size=tok.vocab_size, context=16)
    return {
        "mae": make_run(root / "mae", MAE.from_preset("mae-tiny")),
        "mlm": make_run(root / "mlm", mlm, tok),
        "clm": make_run(root / "clm", gpt, tok),
    }


def snapshot(folder):
    """Each file's bytes; a ``.safetensors`` file's metadata and tensors (safetensors writes its metadata map in
    no fixed order, so two writes of the same export differ in bytes)."""
    from safetensors import safe_open

    out = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".safetensors":
            with safe_open(path, "pt") as f:
                out[path.name] = (f.metadata(), {k: f.get_tensor(k).numpy().tobytes() for k in f.keys()})  # noqa: SIM118
        else:
            out[path.name] = path.read_bytes()
    return out


def refused(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_a_new_or_empty_folder_is_written(runs, tmp_path, capsys):
    assert main(["export-hf", str(runs["clm"]), str(tmp_path / "new" / "hf")]) == 0
    written = {p.name for p in (tmp_path / "new" / "hf").iterdir()}
    assert written == {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    (tmp_path / "empty").mkdir()
    assert main(["export-hf", str(runs["mae"]), str(tmp_path / "empty")]) == 0
    assert "replaced" not in capsys.readouterr().err


def test_prepared_data_is_refused_and_left_untouched(runs, tmp_path, capsys):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for name, text in (("index.json", "{}"), ("prepare.json", "{}"), ("shard-00000.bin", "x")):
        (prepared / name).write_text(text)
    TextTokenizer.train(["other words"], "char").save(prepared)
    before = snapshot(prepared)
    refused(capsys, ["export-hf", str(runs["clm"]), str(prepared)], str(prepared), "prepared data", "index.json")
    assert snapshot(prepared) == before


def test_other_files_a_run_and_foreign_hf_folders_are_refused(runs, tmp_path, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    refused(capsys, ["export-hf", str(runs["clm"]), str(other)], str(other), "todo.txt")
    assert snapshot(other) == {"todo.txt": b"keep me"}
    refused(capsys, ["export-hf", str(runs["clm"]), str(runs["mlm"])], str(runs["mlm"]), "holds a masklab run")
    refused(capsys, ["export-hf", str(runs["clm"]), str(runs["clm"].parent)], "holds a masklab run")
    # A folder transformers saved (no masklab hash in its weights) is the user's model, not an earlier export.
    hf = tmp_path / "hf"
    assert main(["export-hf", str(runs["clm"]), str(hf)]) == 0
    save_file(load_file(hf / "model.safetensors"), hf / "model.safetensors", metadata={"format": "pt"})
    before = snapshot(hf)
    refused(capsys, ["export-hf", str(runs["clm"]), str(hf)], "Hugging Face folder export-hf did not write")
    assert snapshot(hf) == before


def test_an_earlier_export_of_the_same_class_is_replaced_with_a_note(runs, tmp_path, capsys):
    folder = tmp_path / "hf"
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    capsys.readouterr()
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    assert f"replaced the earlier GPT2LMHeadModel export in {folder}" in capsys.readouterr().err


def test_an_export_of_another_class_is_refused_not_mixed(runs, tmp_path, capsys):
    folder = tmp_path / "hf_mae"
    assert main(["export-hf", str(runs["mae"]), str(folder)]) == 0
    before = snapshot(folder)
    assert "preprocessor_config.json" in before
    refused(capsys, ["export-hf", str(runs["mlm"]), str(folder)], str(folder), "ViTMAEForPreTraining export",
            "BertForMaskedLM")  # fmt: skip
    assert snapshot(folder) == before


@pytest.fixture
def other_clm(tmp_path):
    """A second GPT-2-class run with another vocabulary: its export differs from ``runs["clm"]``'s in every file."""
    tok = TextTokenizer.train(["xyz uvw", "qrs"], "char")
    return make_run(tmp_path / "other-clm", GPT.from_preset("gpt-tiny", vocab_size=tok.vocab_size, context=8), tok)


@pytest.mark.parametrize(("error", "code"), [(OSError(28, "No space left on device"), 2), (KeyboardInterrupt(), 130)])
def test_a_failure_while_writing_leaves_the_earlier_export_whole(runs, other_clm, tmp_path, monkeypatch, error, code):
    import masklab.core.io

    folder = tmp_path / "hf"
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    before = snapshot(folder)

    def fail(*args, **kwargs):  # the weights come after tokenizer.json: a write in place would mix the two
        raise error

    monkeypatch.setattr(masklab.core.io, "save_checkpoint", fail)
    assert main(["export-hf", str(other_clm), str(folder)]) == code
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "other-clm"]  # no temp folder left behind


def test_a_replaced_export_holds_only_the_new_files(runs, other_clm, tmp_path, monkeypatch, capsys):
    import os

    folder, fresh = tmp_path / "hf", tmp_path / "fresh"
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    folder.chmod(0o750)
    assert main(["export-hf", str(other_clm), str(folder)]) == 0
    assert main(["export-hf", str(other_clm), str(fresh)]) == 0
    assert snapshot(folder) == snapshot(fresh)
    assert folder.stat().st_mode & 0o777 == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "hf", "other-clm"]
    # Where the system cannot exchange two folders atomically, two renames swap them; the second failing puts
    # the earlier export back.
    import masklab.core.io

    monkeypatch.setattr(masklab.core.io, "exchange_paths", lambda a, b: False)
    before, rename = snapshot(folder), os.rename

    def flaky(src, dst):
        if ".tmp-" in os.path.basename(src):
            raise OSError(5, "Input/output error")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 2
    assert "Input/output error" in capsys.readouterr().err
    assert snapshot(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "hf", "other-clm"]


def test_an_empty_folder_is_filled_in_place(runs, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    inode = folder.stat().st_ino
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    assert folder.stat().st_ino == inode and (folder / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_earlier_export_is_replaced_in_one_atomic_exchange(runs, other_clm, tmp_path, monkeypatch):
    import masklab.core.io

    folder, fresh = tmp_path / "hf", tmp_path / "fresh"
    assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
    calls, exchange = [], masklab.core.io.exchange_paths

    def recording(a, b):
        calls.append((a, b))
        return exchange(a, b)

    monkeypatch.setattr(masklab.core.io, "exchange_paths", recording)
    assert main(["export-hf", str(other_clm), str(folder)]) == 0
    assert main(["export-hf", str(other_clm), str(fresh)]) == 0  # a new folder: one rename, no exchange
    assert len(calls) == 1 and calls[0][1] == folder.resolve()
    assert snapshot(folder) == snapshot(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "hf", "other-clm"]  # the earlier one removed


def test_what_a_killed_export_left_is_removed_by_the_next_a_live_ones_kept(runs, tmp_path):
    """``kill -9`` during an export leaves its hidden folder; the next export into the same folder removes it
    (its writer is dead), never a live writer's (a sleeping child's pid)."""
    import subprocess
    import sys

    from tests.core.leftovers import DEAD_PID, plant

    folder, fresh = tmp_path / "hf", tmp_path / "fresh"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead, live, dead_old = plant(folder, DEAD_PID), plant(folder, child.pid), plant(folder, DEAD_PID, "old")
        assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
        assert not dead.exists() and not dead_old.exists() and live.exists()
        dead = plant(folder, DEAD_PID)  # and when an earlier export is replaced
        assert main(["export-hf", str(runs["clm"]), str(folder)]) == 0
        assert not dead.exists() and live.exists()
    finally:
        child.kill()
        child.wait()
    assert main(["export-hf", str(runs["clm"]), str(fresh)]) == 0
    assert snapshot(folder) == snapshot(fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fresh", "hf", live.name])
