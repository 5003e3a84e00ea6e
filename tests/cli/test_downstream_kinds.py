"""``embed`` / ``probe`` on table and causal-LM runs (dispatched on the run's kind, as the README says), a clear
exit 2 naming what is supported where a task is not, and the series fine-tune output layout."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch

from masklab.cli import main


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    rng = np.random.default_rng(0)
    n = 60
    kind = rng.integers(0, 2, size=n)
    frame = pd.DataFrame({"a": rng.normal(size=n) + 2 * kind, "b": rng.normal(size=n),
                          "city": rng.choice(["Oslo", "Lima"], size=n), "kind": np.where(kind, "x", "y")})  # fmt: skip
    frame.to_csv(root / "t.csv", index=False)
    out = root / "run"
    assert main(["pretrain", "table", "--data", str(root / "t.csv"), "--label", "kind", "--preset", "table-tiny",
                 "--steps", "3", "--batch-size", "16", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    return root, out, frame


def test_table_embed_matches_the_model_and_indexes_rows(table_run, tmp_path):
    from masklab.tokenizers.table import encode_frame
    from masklab.train.run import Run

    root, out, frame = table_run
    feats_path = tmp_path / "t.npy"
    assert main(["embed", str(out), "-o", str(feats_path), "--device", "cpu"]) == 0
    feats = np.load(feats_path)
    index = read_csv(tmp_path / "t.index.csv")
    assert feats.shape == (60, 32) and len(index) == 60
    assert [r["source"] for r in index[:2]] == [f"{root / 't.csv'}[0]", f"{root / 't.csv'}[1]"]
    assert [r["label"] for r in index] == list(frame["kind"])
    model = Run(out).load_model("cpu")
    enc = encode_frame(frame.drop(columns="kind"), model.config.schema)
    with torch.no_grad():
        want = model.embed(enc.values, enc.categories, enc.missing).numpy()
    np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)


def test_table_probe_and_no_finetune(table_run, capsys):
    _, out, _ = table_run
    assert main(["probe", str(out), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    for row in ("TableMAE encoder", "random encoder", "raw cells"):
        assert row in table
    assert main(["finetune", str(out), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "mae, mlm, series" in err and "embed / probe" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def clm_run(tmp_path_factory):
    pytest.importorskip("tokenizers")
    root = tmp_path_factory.mktemp("clm")
    for label, line in (("kings", "ROMEO: my lord the king."), ("fools", "FOOL: a jest, a jest!")):
        (root / "data" / label).mkdir(parents=True)
        for i in range(8):
            (root / "data" / label / f"{i}.txt").write_text(f"{line} {i}\n" * 3)
    out = root / "run"
    assert main(["pretrain", "clm", "--data", str(root / "data"), "--out", str(out), "--preset", "gpt-tiny",
                 "--context", "16", "--steps", "2", "--batch-size", "4", "--device", "cpu"]) == 0  # fmt: skip
    return root, out


def test_clm_embed_is_the_last_token_state_and_probe_runs(clm_run, tmp_path, capsys):
    from masklab.recipes.clm import load_lm_run

    root, out = clm_run
    assert main(["embed", str(out), "--data", str(root / "data"), "-o", str(tmp_path / "c.npy"),
                 "--device", "cpu"]) == 0  # fmt: skip
    feats, index = np.load(tmp_path / "c.npy"), read_csv(tmp_path / "c.index.csv")
    assert feats.shape == (16, 64) and [r["label"] for r in index] == ["fools"] * 8 + ["kings"] * 8
    model, tok, _ = load_lm_run(out)
    first = (root / "data" / "fools" / "0.txt").read_text()  # row 0: folders and files in sorted order
    ids = torch.tensor([tok.encode(first, add_special_tokens=False).ids[:16]])
    with torch.no_grad():
        np.testing.assert_allclose(feats[0], model.embed(ids)[0].numpy(), rtol=1e-5, atol=1e-6)
    capsys.readouterr()
    assert main(["probe", str(out), "--data", str(root / "data"), "--device", "cpu"]) == 0
    assert "GPT decoder" in capsys.readouterr().out


@pytest.mark.slow
def test_series_finetune_layout(tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", "series", "--data", "builtin:japanese-vowels", "--preset", "series-tiny", "--steps",
                 "2", "--batch-size", "16", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    assert main(["finetune", str(out), "--steps", "2", "--batch-size", "16", "--device", "cpu"]) == 0
    ft = out / "finetune"
    for name in ("model.safetensors", "config.json", "metrics.json", "confusion.png", "confusion.csv"):
        assert (ft / name).is_file(), name
    metrics = json.loads((ft / "metrics.json").read_text())
    assert len(metrics["labels"]) == 9 and np.array(metrics["confusion"]).sum() == metrics["test_size"] == 370
    from masklab.recipes.series import classifier_augment, load_pretrained

    shift = classifier_augment(load_pretrained(out).config).shift  # the fine-tuning default follows the patch
    assert metrics["shift"] == shift and metrics["lr"] == (1e-3 if shift else 5e-4)
    # predict with the series classifier agrees with its own argmax
    from masklab.data.series import load_series
    from masklab.recipes.finetune_outputs import load_finetuned
    from masklab.recipes.series import predict_classes

    assert main(["predict", str(out), "builtin:japanese-vowels", "-o", str(tmp_path / "p.csv"), "--device",
                 "cpu"]) == 0  # fmt: skip
    rows = read_csv(tmp_path / "p.csv")
    want = predict_classes(load_finetuned(ft), load_series("builtin:japanese-vowels"))
    assert [r["prediction"] for r in rows] == [metrics["labels"][i] for i in want]


def test_embed_output_name_is_checked_before_any_work(tmp_path, capsys):
    assert main(["embed", str(tmp_path / "no-run"), "-o", str(tmp_path / "e.txt")]) == 2  # no run read yet
    assert "-o " + str(tmp_path / "e.txt") + ": features are written as .npy" in capsys.readouterr().err


def test_pretrain_mae_on_images_the_preset_cannot_tile_names_presets_that_can(tmp_path, capsys):
    args = ["pretrain", "mae", "--data", "builtin:synthetic-subjects", "--steps", "1", "--out", str(tmp_path / "r")]
    assert main(args) == 2  # the default preset's 7-pixel patches do not tile 32x32 images
    err = capsys.readouterr().err
    assert "is 32x32 pixels, not a multiple of --preset mae-small-28's patch size 7: pick --preset" in err
    assert "mae-seg-32" in err
