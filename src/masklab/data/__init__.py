"""Datasets for every modality. ``--data`` accepts a path or ``builtin:NAME`` (see :func:`parse_data_spec`)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: either a built-in dataset name or a filesystem path."""

    builtin: str | None = None
    path: Path | None = None

    def require_path(self) -> Path:
        """The filesystem path; a ``ValueError`` for a built-in dataset (which has none)."""
        if self.path is None:
            raise ValueError(f"--data builtin:{self.builtin}: expected a filesystem path here, not a built-in dataset")
        return self.path


def parse_data_spec(spec: str, *, known_builtins: tuple[str, ...] = ()) -> DataSpec:
    """Parse ``builtin:NAME`` or a path (``str`` or ``os.PathLike``). Unknown built-in names and missing paths
    raise a clear error."""
    spec = os.fspath(spec)
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if known_builtins and name not in known_builtins:
            raise ValueError(f"unknown built-in dataset {name!r}; known: {', '.join(known_builtins)}")
        return DataSpec(builtin=name)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {spec}: no such file or directory")
    return DataSpec(path=path)


def package_file(package: str, *parts: str, install_hint: str | None = None) -> Path:
    """Path of a data file shipped inside an installed PyPI package (no download at run time)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        hint = install_hint or f"pip install {package}"
        raise ModuleNotFoundError(f"built-in data needs the package {package!r}: {hint}")
    root = Path(next(iter(found.submodule_search_locations)))
    path = root.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the installed package {package!r}")
    return path
