"""A fine-tune stopped before it wrote ``model.safetensors`` (``kill -9`` or Ctrl-C while it tests): ``finetune``
into it again, ``predict RUN`` and ``predict RUN/finetune`` all give the same advice, and that advice works."""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

import masklab.recipes.finetune_outputs
from masklab.cli import main
from tests.core.leftovers import DEAD_PID


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("ft")
    for digit in (0, 1):
        (root / "data" / str(digit)).mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == digit][:12]):
            from PIL import Image

            Image.fromarray((image * 15).astype("uint8")).save(root / "data" / str(digit) / f"{i}.png")
    assert main(["pretrain", "mae", "--data", str(root / "data"), "--preset", "mae-tiny", "--steps", "2",
                 "--batch-size", "8", "--device", "cpu", "--out", str(root / "run")]) == 0  # fmt: skip
    return root / "run"


def error_line(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err  # progress lines ("masklab predict: loading RUN"), then one error line
    errors = [line for line in err.splitlines() if line.startswith("masklab: error: ")]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1] and "Traceback" not in err, err
    return errors[0].removeprefix("masklab: error: ")


def test_every_message_about_a_stopped_fine_tune_gives_the_advice_that_works(run, tmp_path, monkeypatch, capsys):
    work = tmp_path / "run"
    shutil.copytree(run, work)
    out = work / "finetune"
    finetune = ["finetune", str(work), "--steps", "2", "--batch-size", "8", "--device", "cpu", "-q"]

    def stopped(*args, **kwargs):  # the training checkpoint is written; the process dies before the model
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(masklab.recipes.finetune_outputs, "save_weights", stopped)
        assert main(finetune) == 130
    stop = capsys.readouterr().err.splitlines()[-1]
    (out / ".lock").write_text(json.dumps({"pid": DEAD_PID, "host": socket.gethostname(), "since": time.time()}))
    assert not (out / "model.safetensors").exists() and (out / "checkpoint.safetensors").is_file()
    advice = (f"{out} holds a fine-tune stopped at step 2 of 2, before its model.safetensors was written; finetune "
              f"does not resume: delete {out} (rm -r {out}) and run masklab finetune {work} again (the same "
              "options) to start over, or give it another --out")  # fmt: skip
    assert stop == f"masklab: interrupted: {advice}"  # the Ctrl-C itself says it too
    assert error_line(capsys, finetune) == advice
    images = str(run.parent / "data")
    assert error_line(capsys, ["predict", str(work), images, "-o", str(tmp_path / "p.csv")]) == advice
    assert error_line(capsys, ["predict", str(out), images, "-o", str(tmp_path / "p.csv")]) == advice
    shutil.rmtree(out)  # what the advice says
    assert main(finetune) == 0
    assert main(["predict", str(work), images, "-o", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    finished = f"{out} already holds a finished fine-tune ({out / 'metrics.json'}); give another --out, or delete "
    assert error_line(capsys, finetune) == f"{finished}{out} (rm -r {out}) to fine-tune again"


def test_another_out_names_it_and_a_running_fine_tune_is_waited_for(run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "elsewhere"
    finetune = ["finetune", str(run), "--steps", "2", "--batch-size", "8", "--device", "cpu", "--out", str(out), "-q"]
    with monkeypatch.context() as patch:
        patch.setattr(masklab.recipes.finetune_outputs, "save_weights", lambda *a, **k: sys.exit(3))
        with pytest.raises(SystemExit):
            main(finetune)
    capsys.readouterr()
    err = error_line(capsys, ["predict", str(out), str(run.parent / "data"), "-o", str(tmp_path / "p.csv")])
    assert err.endswith(f"run masklab finetune {run} --out {out} again (the same options) to start over, or give "
                        "it another --out")  # fmt: skip
    assert error_line(capsys, finetune) == err
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:  # a process still writing the folder: predict says to wait, not to delete it
        (out / ".lock").write_text(json.dumps({"pid": child.pid, "host": socket.gethostname(), "since": time.time()}))
        err = error_line(capsys, ["predict", str(out), str(run.parent / "data"), "-o", str(tmp_path / "p.csv")])
        assert (
            err == f"{out} is still being fine-tuned by process {child.pid} on {socket.gethostname()} (no model "
            "yet); wait for it to finish"
        )
    finally:
        child.kill()
        child.wait()
