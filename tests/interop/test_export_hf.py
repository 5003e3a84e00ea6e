"""``masklab export-hf RUN DIR`` for tiny MAE, BERT and GPT-2 runs: the folder reloads offline in transformers
(``from_pretrained``) and gives the run's own outputs on the same input (atol 1e-5); what HF cannot represent
is refused by name."""

import json
import random

import pytest
import torch

from masklab.cli import main
from masklab.train.run import Run

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytestmark = pytest.mark.slow  # each pretrains a tiny run and loads it in transformers (~10-60 s under load)


def test_mae_run_exports_to_vitmae(tmp_path, capsys):
    run = tmp_path / "mae"
    assert main(["pretrain", "mae", "--data", "builtin:digits", "--preset", "mae-tiny", "--steps", "2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(run)]) == 0  # fmt: skip
    folder = tmp_path / "hf-mae"
    assert main(["export-hf", str(run), str(folder)]) == 0
    assert "ViTMAEForPreTraining" in capsys.readouterr().out
    hf = transformers.ViTMAEForPreTraining.from_pretrained(folder).eval()
    ours = Run(run).load_model("cpu")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, generator=g)
    noise = torch.rand(3, ours.config.num_patches, generator=g)
    with torch.no_grad():
        got = ours(images, noise=noise)
        want = hf(pixel_values=ours.normalize(images), noise=noise)  # the image processor's job
    torch.testing.assert_close(want.logits, got.pred, rtol=0, atol=1e-5)
    torch.testing.assert_close(want.loss, got.loss, rtol=0, atol=1e-5)
    assert torch.equal(want.mask.bool(), got.masked)
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx(list(ours.config.pixel_mean))
    assert processor["image_std"] == pytest.approx(list(ours.config.pixel_std))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    rng = random.Random(0)
    words = ["bank", "team", "goal", "shares", "coach", "market", "profit", "match"]
    for label in ("a", "b"):
        (root / label).mkdir()
        for i in range(8):
            (root / label / f"{i}.txt").write_text(" ".join(rng.choice(words) for _ in range(12)) + ".")
    return root


def test_mlm_run_exports_to_bert(corpus, tmp_path, capsys):
    run = tmp_path / "mlm"
    assert main(["pretrain", "mlm", "--data", str(corpus), "--out", str(run), "--preset", "bert-tiny", "--steps",
                 "2", "--vocab-size", "60", "--seq-len", "16", "--batch-size", "4", "--holdout", "0",
                 "--device", "cpu"]) == 0  # fmt: skip
    folder = tmp_path / "hf-bert"
    assert main(["export-hf", str(run), str(folder)]) == 0
    assert (folder / "tokenizer.json").is_file()
    hf = transformers.BertForMaskedLM.from_pretrained(folder).eval()
    ours = Run(run).load_model("cpu")
    ids = torch.randint(0, ours.config.bert.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = hf(input_ids=ids).logits  # (B, L, V)
        got = ours.predict_masked(ours(ids), torch.ones_like(ids, dtype=torch.bool)).view_as(want)
    torch.testing.assert_close(want, got, rtol=0, atol=1e-5)
    # A fine-tuned classifier is not a masked LM: refused, naming the field.
    assert main(["finetune", str(run), "--steps", "1", "--batch-size", "4", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main(["export-hf", str(run / "finetune"), str(tmp_path / "x")]) == 2
    assert "model.task='classify'" in capsys.readouterr().err


def test_clm_run_exports_to_gpt2(corpus, tmp_path, capsys):
    run = tmp_path / "clm"
    assert main(["pretrain", "clm", "--data", str(corpus), "--out", str(run), "--preset", "gpt-tiny", "--context",
                 "16", "--steps", "2", "--batch-size", "4", "--device", "cpu"]) == 0  # fmt: skip
    folder = tmp_path / "hf-gpt2"
    assert main(["export-hf", str(run), str(folder)]) == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ours = Run(run).load_model("cpu")
    ids = torch.randint(0, ours.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=ids).logits, ours(ids), rtol=0, atol=1e-5)
    # The exported folder is a GPT-2 folder masklab itself reads back (generate / perplexity / --init-from).
    assert main(["generate", str(folder), "bank", "--max-tokens", "3", "--greedy", "--device", "cpu"]) == 0
    # Never into a run; other kinds are refused naming the kind.
    capsys.readouterr()
    assert main(["export-hf", str(run), str(run)]) == 2
    assert "holds a masklab run" in capsys.readouterr().err
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "config.json").write_text(json.dumps({"kind": "table", "model": {}}))
    assert main(["export-hf", str(tmp_path / "fake"), str(tmp_path / "y")]) == 2
    assert "'table' run" in capsys.readouterr().err
