"""The README's shell commands run as written (issue 17).

Every ```bash block of README.md is run in order, in one temporary directory (so ``runs/mae`` written by one
command is there for the next), each ``masklab ...`` command through ``python -m masklab`` with the same
arguments except for the budget substitutions below: the README's budgets are for a real run, these make
the same commands finish in seconds. Files the README names as the reader's own (``photo.png``, ``corpus/``)
get small stand-ins from :data:`USER_FILES`. Commands that cannot run here are listed in :data:`NOT_RUN` with
the reason; their ``masklab`` arguments are still parsed (every flag exists and every value is valid).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# Budget substitutions, applied to a masklab command's arguments: option -> value used here.
TINY_VALUES = {
    "--minutes": ("--steps", "2"),
    "--steps": ("--steps", "2"),
    "--max-tokens": ("--max-tokens", "8"),
    "--workers": ("--workers", "1"),
}
TINY_PRESETS = {"bert-small": "bert-tiny"}
# Options added to a command that lacks them (its defaults train or evaluate for minutes).
TINY_EXTRA: dict[tuple[str, ...], dict[str, str]] = {
    ("pretrain", "mae"): {"--preset": "mae-tiny", "--steps": "2", "--batch-size": "16"},
    ("pretrain", "mlm"): {"--preset": "bert-tiny", "--steps": "2", "--batch-size": "8"},
    ("pretrain", "clm"): {"--preset": "gpt-tiny", "--steps": "2", "--batch-size": "8"},
    ("pretrain", "table"): {"--preset": "table-tiny", "--steps": "2", "--max-rows": "300"},
    ("pretrain", "series"): {"--preset": "series-tiny", "--steps": "2", "--batch-size": "8"},
    ("probe",): {"--max-examples": "200"},
    ("finetune",): {"--steps": "2"},
    ("segment", "train"): {"--steps": "2"},
}

# Commands that are parsed but not run, with the reason (matched against the command's first words).
NOT_RUN = {
    "make demo": "creates .venv and pip-installs torch (network); its commands are the image block's",
    "make test": "runs this test suite",
    "make serve-demo": "trains minutes-long runs, then serves until Ctrl-C",
    "masklab serve": "serves until Ctrl-C (the serve tests drive the same app)",
    "torchrun": "launches 8 processes per node / several machines",
}


def user_files(root: Path) -> None:
    """Stand-ins for the files the README names as the reader's own."""
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(photo).save(root / "photo.png")
    Image.fromarray(np.roll(photo, 7, axis=1)).save(root / "BG.png")
    hand = np.zeros((40, 48), dtype=np.uint8)
    hand[10:25, 12:30] = 255
    Image.fromarray(hand).save(root / "hand.png")
    corpus = root / "corpus"
    corpus.mkdir()
    words = ["the", "market", "rose", "as", "bank", "raised", "interest", "rates", "and", "shares", "fell"]
    for i in range(12):
        lines = [" ".join(rng.choice(words, size=12)) + "." for _ in range(40)]
        (corpus / f"doc{i}.txt").write_text("\n".join(lines) + "\n")
    hf_folders(root, rng, words)


def hf_folders(root: Path, rng: np.random.Generator, words: list[str]) -> None:
    """Stand-ins for the Hugging Face ``save_to_disk`` folders the README names (``wiki_hf/``, ``imagenet_hf/``)."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    texts = [" ".join(rng.choice(words, size=30)) + "." for _ in range(200)]
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(root / "wiki_hf"))
    images = [Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)) for _ in range(64)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    data = {"image": images, "label": [i % 2 for i in range(64)]}
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(root / "imagenet_hf"))


def readme_blocks(text: str) -> list[str]:
    """The bodies of the ```bash blocks, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def commands(block: str) -> list[str]:
    """Logical lines of a block: continuations joined, a here-document kept with its command."""
    lines, out = block.splitlines(), []
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            end = lines.index(heredoc.group(1), i + 1)
            line = "\n".join(lines[i : end + 1])
            i = end
        out.append(line)
        i += 1
    return [c for c in out if c.strip() and not c.lstrip().startswith("#")]


def tiny(argv: list[str]) -> list[str]:
    """``masklab`` arguments with the budget substitutions applied."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg in TINY_VALUES:
            out[i], out[i + 1] = TINY_VALUES[arg]
        elif arg == "--preset":
            out[i + 1] = TINY_PRESETS.get(out[i + 1], out[i + 1])
    if out.count("--steps") > 1:  # --minutes and --steps both became --steps
        first = out.index("--steps")
        del out[first : first + 2]
    for prefix, extra in TINY_EXTRA.items():
        if tuple(out[: len(prefix)]) == prefix:
            for option, value in extra.items():
                if option not in out and not (option == "--steps" and "--epochs" in out):
                    out += [option, value]
    return out


def parse_only(argv: list[str]) -> None:
    """Parse ``masklab`` arguments without running the command (argparse exits 2 on a bad flag)."""
    from masklab.cli import build_parser

    build_parser(argv).parse_args(argv)


def not_run_reason(words: list[str]) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if words[: len(prefix.split())] == prefix.split():
            return reason
    return None


def check_not_run(words: list[str]) -> None:
    """What can be checked of a command that is not run: its make target exists, its masklab flags parse."""
    if words[0] == "make":
        assert re.search(rf"^{re.escape(words[1])}:", (ROOT / "Makefile").read_text(), flags=re.M), words
    elif words[0] == "torchrun":
        parse_only(words[words.index("masklab") + 1 :])
    else:
        parse_only(words[1:])


# A head trained for the test's 2 steps finds no subject in the stand-in photo: `edit` without `--mask` then
# stops with this one line (exit 2) after loading the run and running the head. That is the command working as
# written on an untrained head; with the README's budgets the head finds the subject.
NO_SUBJECT = "masklab: error: the segmentation head found no subject in this image; pass --mask MASK.png\n"


def run(args: list[str] | str, cwd: Path, env: dict[str, str]) -> None:
    shell = isinstance(args, str)
    done = subprocess.run(args, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, timeout=600)
    shown = args if shell else shlex.join(args)
    if not shell and args[3:4] == ["edit"] and not any(a.startswith("--mask") for a in args) and done.returncode == 2:
        assert done.stderr == NO_SUBJECT, f"{shown}\n{done.stderr[-3000:]}"
        return
    assert done.returncode == 0, f"{shown}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, f"{shown}\n{done.stderr[-3000:]}"


def test_readme_parser_understands_the_blocks():
    """Cheap checks of the machinery above (the slow test below relies on it)."""
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    assert tiny(["pretrain", "mae", "--out", "r", "--minutes", "3"]) == [
        "pretrain", "mae", "--out", "r", "--steps", "2", "--preset", "mae-tiny", "--batch-size", "16",
    ]  # fmt: skip
    assert tiny(["pretrain", "mlm", "--preset", "bert-small", "--steps", "1000"])[3] == "bert-tiny"
    assert commands("a \\\n  b # x\n# only a comment\ncat > f <<'EOF'\n1,2\nEOF\nc") == [
        "a  b # x", "cat > f <<'EOF'\n1,2\nEOF", "c",
    ]  # fmt: skip
    for block in blocks:  # every NOT_RUN entry names a command the README has, and each such command parses
        for command in commands(block):
            for segment in command.split(" && "):
                words = shlex.split(segment, comments=True) if "<<" not in segment else ["<heredoc>"]
                if words and not_run_reason(words):
                    check_not_run(words)


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASKLAB_CPU_LINEAR": "torch", "PYTHONPATH": str(ROOT / "src")}
    env.setdefault("MPLBACKEND", "Agg")
    user_files(tmp_path)
    skipped = []
    for block in readme_blocks(README.read_text(encoding="utf-8")):
        for command in commands(block):
            if "<<" in command:  # a here-document writes a file the next commands read
                run(command, tmp_path, env)
                continue
            for segment in command.split(" && "):
                words = shlex.split(segment, comments=True)
                reason = not_run_reason(words)
                if reason:
                    check_not_run(words)
                    skipped.append((segment, reason))
                elif words[0] == "masklab":
                    run([sys.executable, "-m", "masklab", *tiny(words[1:])], tmp_path, env)
                else:
                    run(segment, tmp_path, env)
    assert len(skipped) == 6, skipped  # make demo/test/serve-demo, masklab serve, two torchrun lines


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(tmp_path):
    """Every ```python block runs unchanged, in order, in one fresh interpreter in a temporary directory."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) >= 2  # the mask / encoder block and the table estimators
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASKLAB_CPU_LINEAR": "torch", "PYTHONPATH": str(ROOT / "src")}
    for block in blocks:
        run([sys.executable, "-c", block], tmp_path, env)
    assert (tmp_path / "shuttle-detector" / "estimator.json").is_file()
