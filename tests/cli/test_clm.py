"""``masklab pretrain clm``, ``masklab generate`` and ``masklab perplexity`` end to end on a tiny corpus."""

import json

import pytest

from masklab.cli import main

pytest.importorskip("tokenizers")

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me.\n\n" * 40


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clm")
    (root / "play.txt").write_text(TEXT)
    out = root / "run"
    args = ["pretrain", "clm", "--data", str(root / "play.txt"), "--out", str(out), "--preset", "gpt-tiny",
            "--context", "32", "--steps", "40", "--batch-size", "8", "--warmup", "5", "--lr", "3e-3",
            "--log-every", "20", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    return out


def test_pretrain_writes_a_run(run_dir):
    for name in ("config.json", "checkpoint.safetensors", "tokenizer.json", "lm.json", "eval.json"):
        assert (run_dir / name).is_file(), name
    scores = json.loads((run_dir / "eval.json").read_text())
    assert scores["step"] == 40 and scores["val"]["loss"] < 3.0  # far below uniform over the ~40 characters
    config = json.loads((run_dir / "config.json").read_text())
    assert config["kind"] == "clm" and config["model"]["context"] == 32


def test_generate(run_dir, capsys):
    assert main(["generate", str(run_dir), "ROMEO:\\n", "JULIET:", "--max-tokens", "30", "--greedy",
                 "--device", "cpu"]) == 0  # fmt: skip
    first, second = capsys.readouterr().out.split("-" * 40 + "\n")
    assert first.startswith("ROMEO:\n") and second.startswith("JULIET:")
    assert len(first.rstrip("\n")) > len("ROMEO:\n")


def test_one_string_is_one_prompt_in_python(run_dir):
    from masklab.recipes import generate

    # iterating a string gave six prompts, 'R', 'O', 'M', ... (examples/clm_text.py did exactly that)
    assert generate(run_dir, "ROMEO:", max_tokens=5, temperature=0, device="cpu") == generate(
        run_dir, ["ROMEO:"], max_tokens=5, temperature=0, device="cpu"
    )
    assert [p for p, _ in generate(run_dir, "ROMEO:", max_tokens=5, temperature=0, device="cpu")] == ["ROMEO:"]


def test_generate_stop_string_and_seed(run_dir, capsys):
    base = ["generate", str(run_dir), "ROMEO:", "--max-tokens", "60", "--device", "cpu", "--seed", "3"]
    assert main(base) == 0
    sampled = capsys.readouterr().out
    assert main(base) == 0
    assert capsys.readouterr().out == sampled  # seeded sampling replays
    assert main([*base, "--stop", "\\n"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # cut before the first generated newline (print adds one)


def test_perplexity(run_dir, capsys):
    assert main(["perplexity", str(run_dir), "--json", "--device", "cpu"]) == 0
    val = json.loads(capsys.readouterr().out)
    saved = json.loads((run_dir / "eval.json").read_text())["val"]
    assert val["split"] == "val" and val["tokens"] == saved["tokens"]
    assert val["loss"] == pytest.approx(saved["loss"], rel=1e-5)
    assert main(["perplexity", str(run_dir), "--data", str(run_dir.parent / "play.txt"), "--device", "cpu"]) == 0
    assert "perplexity" in capsys.readouterr().out


def test_errors(run_dir, tmp_path, capsys):
    assert main(["generate", str(tmp_path), "x"]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["generate", str(run_dir), "x", "--max-tokens", "-1"]) == 2
    assert "--max-tokens" in capsys.readouterr().err
    assert main(["perplexity", str(run_dir), "--data", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    (tmp_path / "short.txt").write_text("tiny")
    assert main(["pretrain", "clm", "--data", str(tmp_path / "short.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "fewer than one window" in capsys.readouterr().err
    assert main(["pretrain", "clm", "--out", str(tmp_path / "r2"), "--preset", "gpt-huge"]) == 2
    assert "gpt-huge" in capsys.readouterr().err


@pytest.mark.slow
def test_pretrain_builtin_shakespeare(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "clm", "--out", str(out), "--steps", "30", "--eval-batches", "5", "--device", "cpu"]) == 0
    assert "validation loss" in capsys.readouterr().out
    assert main(["generate", str(out), "ROMEO:", "--max-tokens", "100", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")
