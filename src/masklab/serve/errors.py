"""Errors as JSON a person can act on: ``{"error": message, "field": name}``, never a traceback.

- :class:`InputError` (raised by the task code for a bad field) -> its status (400 unless said otherwise);
- FastAPI's request validation (a missing field, a wrong type, a number out of range) -> 422 naming the field;
- :class:`BodyLimit` (ASGI middleware) -> 413 for a body over the limit, from its ``Content-Length`` before
  anything is read, or while a body without one is streamed in;
- anything else -> 500 ``internal error`` (the traceback goes to the server log only).
"""

from __future__ import annotations

import logging
from collections.abc import Sized
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("masklab.serve")


class InputError(Exception):
    """A request field the server cannot use: ``field`` names it, ``message`` says what was expected."""

    def __init__(self, field: str | None, message: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status
        self.headers = headers


def check_example(examples: Sized | None, index: int | None, *, field: str = "example", owner: str = "run",
                  status: int = 400) -> int:  # fmt: skip
    """``index`` of one of a panel's held-out ``examples`` (None: it has none), else an :class:`InputError`
    naming ``field`` (``status``: 404 for an example's own URL)."""
    count = 0 if examples is None else len(examples)
    if index is None or not 0 <= index < count:
        raise InputError(field, f"example {index} is out of range: this {owner} has {count} built-in examples", status)
    return index


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": message, "field": field}


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit (an HTTPException, so FastAPI's form parsing lets it through as is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit:,}-byte limit (see masklab serve --max-upload-mb)")


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            err = BodyTooLarge(self.max_bytes)
            await JSONResponse(error_body(err.detail, "body"), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def _input(request: Request, err: InputError) -> JSONResponse:
        return JSONResponse(error_body(err.message, err.field), status_code=err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = []
        for item in err.errors():
            if item.get("type") == "json_invalid":  # its loc is a character offset, not a field
                position = item.get("loc", ("body", "?"))[-1]
                problems.append({"field": "body", "error": f"not valid JSON (at character {position})"})
                continue
            loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "form")]
            problems.append({"field": ".".join(loc) or "body", "error": str(item.get("msg", "invalid"))})
        first = problems[0] if problems else {"field": "body", "error": "invalid request"}
        body = error_body(f"{first['field']}: {first['error']}", first["field"])
        return JSONResponse({**body, "problems": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        field = "body" if err.status_code == 413 else None
        return JSONResponse(error_body(str(err.detail), field), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("masklab serve: unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal error (the server log has the details)"), status_code=500)
