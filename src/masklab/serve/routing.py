"""What every endpoint module shares: the served runs by name, the run lookup (404 / wrong kind as JSON), the
locked model call in the thread pool, upload reading, and the error responses documented in the schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from masklab.serve.errors import InputError
from masklab.serve.runs import LoadedRun
from masklab.serve.schemas import ErrorResponse

T = TypeVar("T")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in ((400, "a field the task cannot use"), (404, "no such run"), (413, "body over the limit"),
                       (415, "not an image / not a UTF-8 CSV / not a series file"),
                       (422, "a missing or mistyped field"))
}  # fmt: skip


class Runs:
    """The served runs by name, and the helpers an endpoint needs around them."""

    def __init__(self, runs: list[LoadedRun]) -> None:
        self.runs = runs
        self.by_name = {run.name: run for run in runs}

    def get(self, name: str, *kinds: str) -> LoadedRun:
        """The run ``name`` (404 naming the runs there are) of one of ``kinds`` (400 otherwise)."""
        run = self.by_name.get(name)
        if run is None:
            raise InputError("run", f"no run named {name!r}; this server has {sorted(self.by_name)}", 404)
        if run.kind not in kinds:
            raise InputError("run", f"{name} is a {run.kind} run; this endpoint takes {' or '.join(kinds)} runs")
        return run

    @staticmethod
    async def call(run: LoadedRun, work: Callable[..., T], *args: Any) -> T:
        """``work(run, *args)`` in the thread pool, holding the run's lock (one model call at a time)."""

        def locked() -> T:
            with run.lock:
                return work(run, *args)

        return await run_in_threadpool(locked)

    @staticmethod
    async def read(upload: UploadFile, field: str) -> bytes:
        """The bytes of an upload (field ``field``; 400 when it is empty)."""
        data = await upload.read()
        if not data:
            raise InputError(field, f"the uploaded {field} is empty (0 bytes)")
        return data
