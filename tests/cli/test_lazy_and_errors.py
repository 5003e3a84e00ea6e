"""The CLI builds only the chosen subcommand's parser (``--help`` loads no other modality), and one error
handler turns user errors into ``masklab: error: ...`` / exit 2 and Ctrl-C into one line / exit 130."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from masklab.cli import COMMANDS, main

SRC = Path(__file__).resolve().parents[2] / "src"
LOADED = """
import json, sys
from masklab.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("masklab"))))
"""


def loaded_modules(argv: list[str]) -> list[str]:
    """masklab modules imported by ``masklab ARGV`` in a fresh interpreter (its stdout's last line)."""
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", LOADED.format(argv=argv)], capture_output=True, text=True,
                            timeout=120, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_pretrain_mae_help_loads_no_other_modality():
    loaded = loaded_modules(["pretrain", "mae", "--help"])
    assert "masklab.cli.pretrain_mae" in loaded  # the check can fail: the chosen module is there
    others = [
        "masklab.models.mlm", "masklab.models.clm", "masklab.models.table", "masklab.data.text", "masklab.data.lm",
        "masklab.data.tables", "masklab.recipes.mlm", "masklab.recipes.clm", "masklab.recipes.table",
        "masklab.cli.pretrain_mlm", "masklab.cli.pretrain_clm", "masklab.cli.pretrain_table", "masklab.cli.text",
        "masklab.cli.table", "masklab.estimators",
    ]  # fmt: skip
    assert [m for m in loaded if any(m == o or m.startswith(o + ".") for o in others)] == []


def test_top_level_help_imports_no_command_module():
    loaded = loaded_modules(["--help"])
    assert [m for m in loaded if m.startswith("masklab.cli.")] == []
    assert not any(m.startswith(("masklab.recipes", "masklab.models", "masklab.train")) for m in loaded)


def test_every_command_is_listed_and_builds(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0, name
        assert "usage: masklab " + name in capsys.readouterr().out
    for kind in ("mae", "mlm", "clm", "table"):
        with pytest.raises(SystemExit):
            main(["pretrain", kind, "--help"])
        out = capsys.readouterr().out
        assert "--mask-ratio" in out or kind == "clm", kind
        assert "--minutes" in out and "--resume" in out, kind


def test_one_name_per_concept_on_pretrain(capsys):
    for kind in ("mae", "mlm"):
        with pytest.raises(SystemExit):
            main(["pretrain", kind, "--help"])
        out = capsys.readouterr().out
        assert "--mask " in out or "--mask {" in out, kind
        assert "--masking" not in out and "--mask-rate" not in out and "--mask-kind" not in out


def test_keyboard_interrupt_is_one_line_exit_130(monkeypatch, capsys):
    import masklab.cli.info

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(masklab.cli.info, "_run", interrupted)
    assert main(["info", "anything"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "masklab: interrupted\n" and captured.out == ""


def test_user_error_is_one_line_exit_2(capsys):
    assert main(["embed", "/nonexistent/run", "-o", "x.npy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("masklab: error: ") and "Traceback" not in err and err.count("\n") == 1


def test_python_dash_m_masklab_runs_the_cli():
    env = {"PYTHONPATH": str(SRC), "PATH": ""}
    result = subprocess.run([sys.executable, "-m", "masklab", "info", "/nonexistent/run"], capture_output=True,
                            text=True, timeout=120, env=env)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("masklab: error: ")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pretrain", "table", "--data", "builtin:iris", "--mask-ratio", "1.5"], "error: --mask-ratio must be in"),
        (["pretrain", "mlm", "--mask-ratio", "1.5"], "--mask-ratio must be in (0, 1), got 1.5"),
    ],
)
def test_a_model_setting_out_of_range_names_the_flag(tmp_path, capsys, argv, expected):
    # The model configs check their own fields (``mask_ratio must ...``); a CLI user gave a flag, so the
    # message names it. Nothing is written.
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert expected in err and "mask_ratio" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_masklab_warning_is_one_line_naming_no_source_file(tmp_path, capsys):
    # Python prints a warning as "/path/to/masklab/x.py:114: UserWarning: ..." plus the source line; a CLI
    # user gets one line. The previous printer is back after the command.
    import warnings

    data = tmp_path / "t.csv"
    data.write_text("a,b\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(12)))
    before = warnings.showwarning
    argv = ["pretrain", "table", "--data", str(data), "--neighbors", "20", "--steps", "2", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "masklab: warning: neighbors=20 but there are only 12 training rows" in err
    assert "UserWarning" not in err and ".py:" not in err
    assert warnings.showwarning is before


def test_resume_with_fewer_steps_than_the_checkpoint_holds_names_the_flag_before_any_work(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text("a,b\n" + "".join(f"{i},{2 * i + 1}\n" for i in range(40)))
    out = str(tmp_path / "r")
    assert main(["pretrain", "table", "--data", str(data), "--steps", "6", "--out", out]) == 0
    capsys.readouterr()
    data.unlink()  # checked before the data is read
    assert main(["pretrain", "table", "--data", str(data), "--resume", "--steps", "3", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--steps 3: " in err and "is already at step 6; resume with --steps above 6" in err
    assert "cfg.steps" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["embed", "RUN", "-o", "/proc/x.npy"],
        ["segment", "RUN", "image.png", "-o", "/proc/x.png"],
        ["edit", "RUN", "image.png", "--blur-background", "-o", "/proc/x.png"],
        ["forecast", "RUN", "--horizon", "3", "-o", "/proc/x.npz"],
    ],
)
def test_an_output_that_cannot_be_written_is_named_before_any_work(argv, tmp_path, capsys):
    # The error came after the work, and named an internal temp file (/proc/.x.png.<hex>.tmp). RUN does not
    # exist here: the output is checked first.
    assert main([a.replace("RUN", str(tmp_path / "no-run")) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"-o {argv[-1]}: cannot write a file in /proc" in err and ".tmp" not in err


def test_segment_and_edit_never_write_over_their_inputs_and_check_both_outputs_first(tmp_path, capsys):
    # `segment RUN img.png -o img.png` replaced the picture with its mask (exit 0); so did edit. And a
    # side-by-side path that could not be written failed after the mask was written. RUN need not exist:
    # these come first.
    image = tmp_path / "img.png"
    image.write_bytes(b"not read")
    run = str(tmp_path / "no-run")
    assert main(["segment", run, str(image), "-o", str(image)]) == 2
    assert "is the input file; segment never modifies its input" in capsys.readouterr().err
    for flag in ("--remove-background", "--blur-background"):
        assert main(["edit", run, str(image), flag, "-o", str(image)]) == 2
        assert "is the input file; edit never modifies its input" in capsys.readouterr().err
    (tmp_path / "q_side.png").mkdir()
    assert main(["segment", run, str(image), "-o", str(tmp_path / "q.png")]) == 2
    assert "the side-by-side picture" in capsys.readouterr().err and not (tmp_path / "q.png").exists()
    assert image.read_bytes() == b"not read"


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_flags_a_prepared_folder_fixes_are_refused_not_ignored(kind, tmp_path, capsys):
    # `--data PREPARED --vocab-size 500 --tokenizer-kind bpe` trained on the folder's own vocabulary and
    # recorded 500 / bpe as the run's arguments. Checked before anything is read.
    prepared = tmp_path / "p"
    prepared.mkdir()
    (prepared / "index.json").write_text("{}")
    argv = ["pretrain", kind, "--data", str(prepared), "--vocab-size", "500", "--tokenizer-kind", "bpe"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"--data {prepared} is prepared (masklab prepare)" in err and "--tokenizer-kind, --vocab-size" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("command", "needs"), [("fill", "fill needs an mlm run"), ("generate", "this command needs a causal LM run")]
)
def test_text_commands_on_a_run_of_another_kind_name_its_kind(tmp_path, capsys, command, needs):
    run = tmp_path / "mae-run"
    run.mkdir()
    (run / "config.json").write_text('{"kind": "mae", "model": {}}')
    assert main([command, str(run), "x [MASK] y"]) == 2
    err = capsys.readouterr().err  # fill used to say "model_type None is not one of ['bert', 'roberta']"
    assert f"{run} is a 'mae' run; {needs}" in err and "model_type" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "usage", "extra"),
    [
        (["pretrain", "mae", "--out", "x", "--minuts", "1"], "usage: masklab pretrain mae ", "--minuts 1"),
        (["info", "--bogus", "x"], "usage: masklab info ", "--bogus"),
        (["--bogus"], "usage: masklab [-h]", "--bogus"),
    ],
)
def test_a_mistyped_option_shows_the_usage_of_the_command_typed(argv, usage, extra, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err  # it showed masklab's top-level usage for a subcommand's typo
    assert exit_.value.code == 2 and err.startswith(usage), err
    assert f"error: unrecognized arguments: {extra}\n" in err
