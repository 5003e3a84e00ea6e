"""Atomic file I/O and the one checkpoint file format (safetensors + an integrity hash).

Every write goes to a temporary file in the same directory, is flushed and fsync'ed, then renamed over the
target with :func:`os.replace`, so a crash (even SIGKILL) at any moment leaves either the old or the new
complete file. Only safetensors is used, never pickle / ``torch.load``: a file from someone else cannot run
code. The ``sha256`` metadata entry covers every tensor's name, dtype, shape and raw bytes, so a bit flip is
reported instead of silently loaded.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

HASH_KEY = "sha256"
# A safetensors header is JSON describing every tensor; anything this large is corruption, not a model.
_MAX_HEADER_BYTES = 100 * 1024 * 1024
_TMP_SUFFIX = ".tmp"


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, truncated, corrupted or not a masklab run."""


# --------------------------------------------------------------------------------------------- atomic I/O
def _fsync_dir(directory: Path) -> None:
    # The rename itself lives in the directory entry; without this a power loss can forget it (POSIX only).
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(tmp_path)``, fsync the result, then rename it over ``path``."""
    path = Path(path)
    if path.is_dir():  # os.replace's error would name the temp file, not the path the user gave
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}"
    try:
        # O_EXCL + mode 0o666 lets the umask decide permissions, like a plain open() would (mkstemp
        # would force 0o600 and make every checkpoint private).
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as err:  # cannot create a file there: name the path the caller gave, not the temp file
            raise OSError(err.errno, f"cannot write a file in {path.parent} ({err.strerror})", str(path)) from None
        write(tmp)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave a half-written temp file behind.
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def exchange_paths(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``): at every moment each
    name holds one whole folder or file. False where the system or file system cannot (the caller then falls
    back to two renames); any other failure is an ``OSError`` naming ``a``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a mix."""
    return _atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_figure(figure: Any, path: str | Path, **savefig: Any) -> Path:
    """A matplotlib ``figure`` rendered in memory (the format from ``path``'s suffix, PNG when it has none), then
    written with :func:`atomic_write_bytes`: a failure while encoding leaves ``path`` as it was."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", **savefig)
    return atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (``ValueError`` if it is not JSON-serialisable)."""
    try:
        text = json.dumps(obj, indent=2) + "\n"
    except TypeError as err:
        raise ValueError(f"cannot write {path}: value is not JSON-serialisable ({err})") from err
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_stale_temp_files(directory: str | Path, names: Iterable[str]) -> None:
    """Delete temp files a killed writer left in ``directory`` for the files ``names`` (never valid data)."""
    for name in names:
        for stale in Path(directory).glob(f".{name}.*{_TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- folders written aside
def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:32] or "_"


def staging_path(target: str | Path, kind: str = "tmp") -> Path:
    """A hidden sibling of ``target`` that names its writer: ``.NAME.KIND-PID-HOST-RANDOM``, so that a later
    writer can tell a killed writer's leftover (:func:`remove_dead_writers`) from a live one's."""
    target = Path(target)
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{_host_tag()}-{secrets.token_hex(6)}"


def remove_dead_writers(target: str | Path, kinds: Iterable[str] = ("tmp",)) -> list[Path]:
    """Remove the :func:`staging_path` siblings of ``target`` (of these ``kinds``) that a writer on this host
    left when it was killed (its process is gone); returns them. A live writer's, and one from another host
    (whose process cannot be looked up), are kept; so is everything on a system that cannot look up a process."""
    from masklab.core.lock import pid_alive

    target, removed = Path(target), list[Path]()
    if os.name != "posix":
        return removed
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.(?:{'|'.join(map(re.escape, kinds))})-(\d{{1,9}})-(.+)-[0-9a-f]{{12}}"
    )
    try:
        entries = list(target.parent.iterdir())
    except OSError:  # no parent folder yet, or not readable: nothing of ours to remove
        return removed
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or found.group(2) != _host_tag() or pid_alive(int(found.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def new_staging_folder(target: str | Path) -> Path:
    """Make the folder a writer of ``target`` fills before putting it in place: a new :func:`staging_path`
    sibling (``target``'s parents are made when missing), after removing what killed writers left there."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_writers(target)
    tmp = staging_path(target)
    tmp.mkdir()  # mode 0o777 less the umask, like any new folder
    return tmp


# ------------------------------------------------------------------------------------------- checkpoints
def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor, in sorted name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        # view(uint8) gives the exact stored bytes for every dtype (bf16 included, which numpy lacks).
        raw = t.reshape(-1).view(torch.uint8).numpy()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape), raw.nbytes]).encode("utf-8"))
        digest.update(raw.data)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> Path:
    """Atomically write ``tensors`` plus ``metadata`` (str -> str) and an integrity hash to ``path``.

    Tensors must not share memory (safetensors refuses); copy tied weights first.
    """
    from safetensors.torch import save_file

    bad = {k: type(v).__name__ for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise ValueError(f"checkpoint metadata must map str to str; offending entries: {bad}")
    if HASH_KEY in metadata:
        raise ValueError(f"metadata key {HASH_KEY!r} is reserved for the integrity hash")
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**metadata, HASH_KEY: tensors_sha256(cpu)}

    def write(tmp: Path) -> None:
        mode = os.stat(tmp).st_mode & 0o777  # what the umask gave the file _atomic_write created
        try:
            save_file(cpu, tmp, metadata=meta)
            os.chmod(tmp, mode)  # safetensors writes a file of its own, owner-only (0600)
        except OSError:
            raise
        except Exception as err:  # safetensors reports a failed write (disk full, ...) as its own error type
            found = re.search(r"os error (\d+)|code: (\d+)", str(err))
            if found is None:
                raise
            code = int(found.group(1) or found.group(2))
            raise OSError(code, os.strerror(code), str(path)) from err

    return _atomic_write(path, write)


def _check_layout(path: Path, data: bytes) -> dict[str, str]:
    """Validate the safetensors framing ourselves so corruption gets a sentence, not a struct error."""
    size = len(data)
    if size < 8:
        raise CheckpointError(f"{path}: file is {size} bytes, too small to be a safetensors checkpoint")
    header_len = int.from_bytes(data[:8], "little")
    if header_len == 0 or header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
        raise CheckpointError(
            f"{path}: bad header: it declares {header_len} header bytes but the file has {size} bytes "
            "(truncated, or not a safetensors file)"
        )
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: bad header: not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: bad header: expected a JSON object")
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as err:
            raise CheckpointError(f"{path}: bad header: tensor {name!r} has no valid data_offsets") from err
    expected = 8 + header_len + end
    if size < expected:
        raise CheckpointError(f"{path}: truncated: expected {expected} bytes, the file has {size}")
    if size > expected:
        raise CheckpointError(f"{path}: {size - expected} unexpected trailing bytes after the tensor data")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: bad header: __metadata__ must map str to str")
    return metadata


def load_checkpoint(path: str | Path, *, verify: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns ``(tensors, metadata)`` on CPU.

    Raises :class:`CheckpointError` naming the file for a missing, truncated or corrupted file, and
    (when ``verify``) for a missing or mismatching integrity hash.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a checkpoint file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"checkpoint {path} {what}")
    data = path.read_bytes()
    metadata = _check_layout(path, data)
    try:
        tensors = load(data)
    except Exception as err:  # safetensors raises its own untyped errors; the path matters more than the type.
        raise CheckpointError(f"{path}: cannot decode tensors: {err}") from err
    del data
    if verify:
        stored = metadata.get(HASH_KEY)
        if stored is None:
            raise CheckpointError(f"{path}: no {HASH_KEY!r} integrity hash in the metadata (not a masklab checkpoint?)")
        actual = tensors_sha256(tensors)
        if actual != stored:
            raise CheckpointError(
                f"{path}: integrity check failed: the tensors hash to {actual[:16]}…, the metadata "
                f"says {stored[:16]}… (the file is corrupted)"
            )
    return tensors, metadata
