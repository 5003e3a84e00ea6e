"""``pretrain mlm --mask span --resume`` of a run trained before ``span_unit`` existed keeps its token-level spans
(the recipe rebuilt the config with the new default, word spans, and the resume check refused the run)."""

import json

import pytest

from masklab.cli import main
from masklab.models.mlm import MLMConfig

pytest.importorskip("tokenizers")

ARGS = ["--data", "builtin:shakespeare", "--preset", "bert-tiny", "--vocab-size", "120", "--seq-len", "32",
        "--batch-size", "4", "--device", "cpu", "--mask", "span"]  # fmt: skip


@pytest.mark.parametrize("saved_unit", [None, "word"])  # None: a config saved before span_unit
def test_a_span_run_resumes_with_the_span_unit_it_trained_with(saved_unit, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["pretrain", "mlm", *ARGS, "--steps", "2", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["span_unit"] == "word"
    if saved_unit is None:
        del config["model"]["span_unit"]
        (run / "config.json").write_text(json.dumps(config))
    assert main(["pretrain", "mlm", "--out", str(run), "--resume", "--steps", "3"]) == 0, capsys.readouterr().err
    saved = json.loads((run / "config.json").read_text())["model"]
    assert MLMConfig.from_dict(saved).span_unit == (saved_unit or "token")
