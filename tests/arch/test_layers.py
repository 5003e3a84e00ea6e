"""The architecture contract (docs/architecture.md): layers point one way, no import cycles, small files,
and one training step runs through few files, each named after a part of a masked model."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src" / "masklab"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """masklab modules ``path`` imports anywhere (function-level too), except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) - {name} for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a package's own
    re-exports of its submodules (``pkg/__init__`` -> ``pkg.sub`` is how a package exposes its API)."""
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_cycle_finder_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_no_source_file_over_the_limit():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_import_contract_is_kept():
    linter = Path(sys.executable).with_name("lint-imports")
    if not linter.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(linter), "--no-cache"], capture_output=True, text=True, cwd=SRC.parents[1])
    assert result.returncode == 0, result.stdout[-3000:]


# ------------------------------------------------------------------------------ one training step, few files
PARTS = ("tokenizers/", "masks/", "nn/", "models/", "core/")


def _files_in_step(model: torch.nn.Module, batch: object) -> set[str]:
    seen: set[str] = set()

    def tracer(frame, event, arg):
        name = frame.f_code.co_filename
        if str(SRC) in name:
            seen.add(str(Path(name).relative_to(SRC)))

    generator = torch.Generator().manual_seed(0)
    sys.setprofile(tracer)
    try:
        model.training_loss(batch, generator).loss.backward()
    finally:
        sys.setprofile(None)
    return seen


def _check_step(files: set[str]) -> None:
    assert len(files) <= 8, sorted(files)
    assert all(f.startswith(PARTS) for f in files), sorted(files)


def test_one_mae_step_runs_through_at_most_8_files():
    from masklab.models.mae import MAE

    model = MAE.from_preset("mae-tiny")
    h, w = model.config.image_size
    files = _files_in_step(model, SimpleNamespace(images=torch.rand(4, model.config.channels, h, w), labels=None))
    _check_step(files)


def test_one_mlm_step_runs_through_at_most_8_files():
    from masklab.core.contract import preset_config
    from masklab.models.mlm import PRESETS, BertConfig, BertForMLM, MLMConfig

    model = BertForMLM(
        MLMConfig(
            bert=preset_config(BertConfig, PRESETS, "bert-tiny", vocab_size=100), mask_id=3, special_ids=(0, 1, 2, 3)
        )
    )
    ids = torch.randint(4, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    padding = torch.zeros(4, 16, dtype=torch.bool)
    padding[1, 10:] = True
    _check_step(_files_in_step(model, {"ids": ids, "padding": padding}))


def test_one_mlm_step_files(capsys):
    """The files one MLM step runs through today (8: BERT, MLM head+loss, the generator, nn, conversions)."""
    from masklab.models.mlm import BertForMLM

    model = BertForMLM.from_preset("bert-tiny", vocab_size=100, mask_id=3, special_ids=(0, 1, 2, 3))
    ids = torch.randint(4, 100, (4, 16), generator=torch.Generator().manual_seed(0))
    padding = torch.zeros(4, 16, dtype=torch.bool)
    padding[1, 10:] = True
    files = _files_in_step(model, {"ids": ids, "padding": padding})
    assert files <= {
        "models/mlm/model.py", "models/mlm/bert.py", "masks/generators.py", "masks/convert.py",
        "nn/blocks.py", "nn/attention.py", "nn/cpu_linear.py", "nn/pos_embed.py", "core/contract.py",
    }, sorted(files)  # fmt: skip
