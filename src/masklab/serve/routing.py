"""What every endpoint module shares: the served runs by name, the run lookup (404 / wrong kind as JSON), the
model call in the thread pool once the run's gate lets it through (waiting in the event loop, not in a worker
thread; a full queue is a 503), upload reading, and the error responses documented in the schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request, UploadFile
from starlette.concurrency import run_in_threadpool

from masklab.serve.errors import InputError
from masklab.serve.gate import MAX_WAITING, RETRY_AFTER, Busy
from masklab.serve.runs import LoadedRun
from masklab.serve.schemas import ErrorResponse

T = TypeVar("T")
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in ((400, "a field the task cannot use"), (404, "no such run"), (413, "body over the limit"),
                       (415, "not an image / not a UTF-8 CSV / not a series file"),
                       (422, "a missing, empty or mistyped field"),
                       (503, f"the run is busy: more than {MAX_WAITING} requests wait for its model (see Retry-After)"))
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
    async def enter(run: LoadedRun) -> None:
        """Wait (in the event loop) for the run's model; a 503 with ``Retry-After`` when its queue is full. The
        caller releases ``run.lock`` when its model call has ended."""
        try:
            await run.lock.acquire()
        except Busy:
            raise InputError("run", f"{run.name} is busy: {MAX_WAITING} requests already wait for its model; try "
                             f"again in a few seconds", 503, {"Retry-After": str(RETRY_AFTER)}) from None  # fmt: skip

    @staticmethod
    async def call(run: LoadedRun, work: Callable[..., T], *args: Any) -> T:
        """``work(run, *args)`` in the thread pool once the run's gate lets it through (one model call at a
        time; waiting holds no worker thread)."""
        await Runs.enter(run)
        try:
            return await run_in_threadpool(work, run, *args)
        finally:
            run.lock.release()

    @staticmethod
    async def filled(request: Request, *fields: str) -> None:
        """A 422 naming the first of the form ``fields`` sent empty (FastAPI would take an empty value for the
        field's default, silently)."""
        form = await request.form()  # parsed once per request: FastAPI's own parse is reused
        for field in fields:
            if any(isinstance(v, str) and not v.strip() for v in form.getlist(field)):
                raise InputError(field, f"the {field} field is empty: give a value, or leave the field out for "
                                 "its default", 422)  # fmt: skip

    @staticmethod
    async def read(upload: UploadFile, field: str) -> bytes:
        """The bytes of an upload (field ``field``; 400 when it is empty)."""
        data = await upload.read()
        if not data:
            raise InputError(field, f"the uploaded {field} is empty (0 bytes)")
        return data
