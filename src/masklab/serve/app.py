"""The FastAPI application: the page, ``/health``, ``/api/runs`` and one JSON endpoint per task (the MAE, text and
table ones here; the series and segmentation ones in :mod:`~masklab.serve.series_api` and
:mod:`~masklab.serve.segment_api`).

Every model call runs in the thread pool (the event loop keeps answering) once its run's gate lets it through
(one forward per model at a time; waiting holds no thread, and at most
:data:`~masklab.serve.gate.MAX_WAITING` requests wait per run: more get a 503 with ``Retry-After``). Inputs are
checked before any model is touched; a bad field is a 4xx JSON ``{"error", "field"}``
(:mod:`masklab.serve.errors`); an empty form field is refused, not taken for its default. Uploads arrive as
multipart form data; the client never names a file on the server. Only requests naming this server are
answered (:mod:`masklab.serve.security`).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from masklab import __version__
from masklab.serve import images, segment_api, segments, series, series_api, tables, text
from masklab.serve.errors import BodyLimit, InputError, install_error_handlers, log
from masklab.serve.routing import ERRORS, Runs
from masklab.serve.runs import LoadedRun
from masklab.serve.schemas import (
    AttentionRequest,
    AttentionResponse,
    FillRequest,
    FillResponse,
    GenerateRequest,
    Health,
    ReconstructResponse,
    RolloutResponse,
    RunInfo,
    ScoreResponse,
)
from masklab.serve.security import LocalOnly

DEFAULT_MAX_UPLOAD = 8 * 1024 * 1024
EXCLUDE = "columns (comma-separated, or one per repeated field; a value naming a column is taken whole)"


def run_details(run: LoadedRun) -> dict[str, Any]:
    """What the page needs to draw a run's panel (an MAE run with a head: ``segmentation`` too)."""
    if run.kind == "mae":
        cfg = run.model.config
        count = 0 if run.examples is None else len(run.examples)
        head = None if run.segment is None else segments.details(run)
        return {"image_size": list(cfg.image_size), "patch_size": cfg.patch_size, "grid": list(cfg.grid),
                "channels": cfg.channels, "mask_ratio": cfg.mask_ratio, "examples": count,
                "segmentation": head}  # fmt: skip
    if run.kind == "segment":
        return {"segmentation": segments.details(run)}
    if run.kind == "series":
        return series.details(run)
    if run.kind == "mlm":
        cfg = run.model.config.bert
        return {"mask_token": run.tokenizer.mask_token, "max_len": cfg.max_len, "layers": cfg.depth,
                "heads": cfg.heads}  # fmt: skip
    if run.kind == "clm":
        cfg = run.model.config
        return {"context": cfg.context, "layers": cfg.depth, "heads": cfg.heads}
    return {"columns": list(run.model.schema_.names), "exclude": list(run.info.get("exclude", [])),
            "label": run.info.get("label")}  # fmt: skip


def create_app(runs: list[LoadedRun], *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD, host: str = "127.0.0.1",
               port: int | None = None) -> FastAPI:  # fmt: skip
    """The app serving ``runs`` (loaded by :func:`masklab.serve.runs.load_runs`), bound to ``host`` and ``port``
    (None: any port): it answers requests that name it only (:mod:`masklab.serve.security`)."""
    # No /docs or /redoc: their pages load scripts from a CDN, and this server works offline (the schema is
    # at /openapi.json).
    app = FastAPI(title="masklab serve", version=__version__, description=__doc__, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes)
    app.add_middleware(LocalOnly, host=host, port=port)  # the outermost: a refused request touches nothing
    install_error_handlers(app)
    served = Runs(runs)
    get_run, call, read_upload, filled = served.get, served.call, served.read, served.filled
    static = files("masklab.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html")

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        return Health(status="ok", runs=len(runs))

    @app.get("/api/runs", response_model=list[RunInfo])
    async def list_runs() -> list[RunInfo]:
        return [RunInfo(name=r.name, kind=r.kind, details=run_details(r), notes=r.notes) for r in runs]

    # ----------------------------------------------------------------------------------------------- mae
    @app.get("/api/runs/{name}/examples/{index}", responses=ERRORS, response_class=Response)
    async def example(name: str, index: int) -> Response:
        """A held-out image of the run's own data, as PNG."""
        run = get_run(name, "mae")
        return Response(images.example_png(run, index), media_type="image/png")

    @app.post("/api/runs/{name}/reconstruct", response_model=ReconstructResponse, responses=ERRORS)
    async def reconstruct(
        request: Request,
        name: str,
        image: Annotated[UploadFile | None, File(description="a PNG, JPEG, ... file, or give 'example'")] = None,
        example: Annotated[int | None, Form(description="index of a built-in (held-out) example")] = None,
        masking: Annotated[str, Form(description="paint | random | block")] = "paint",
        masked: Annotated[str | None, Form(description="painting: one 0/1 per patch, row-major, 1 = hidden")] = None,
        ratio: Annotated[float, Form(description="random / block: fraction of patches hidden")] = 0.75,
        seed: Annotated[int, Form(ge=0, lt=2**63)] = 0,
    ) -> dict:
        """Hide patches of an image (painted, random or block) and show what the MAE fills in."""
        run = get_run(name, "mae")
        await filled(request, "example", "ratio", "seed", "masking")
        data = None if image is None else await read_upload(image, "image")
        kind = None if image is None else image.content_type
        pixels = await run_in_threadpool(images.input_image, run, data, kind, example)  # decoding: off the loop
        hidden = images.choose_masked(run, masking, masked, ratio, seed)
        return await call(run, images.reconstruct, pixels, hidden)

    @app.post("/api/runs/{name}/rollout", response_model=RolloutResponse, responses=ERRORS)
    async def rollout(
        request: Request,
        name: str,
        image: Annotated[UploadFile | None, File(description="an image file, or give 'example'")] = None,
        example: Annotated[int | None, Form(description="index of a built-in (held-out) example")] = None,
    ) -> dict:
        """Where the encoder's [CLS] token draws from: attention rollout over the patches."""
        run = get_run(name, "mae")
        await filled(request, "example")
        data = None if image is None else await read_upload(image, "image")
        kind = None if image is None else image.content_type
        pixels = await run_in_threadpool(images.input_image, run, data, kind, example)  # decoding: off the loop
        return await call(run, images.rollout, pixels)

    # ---------------------------------------------------------------------------------------------- text
    @app.post("/api/runs/{name}/fill", response_model=FillResponse, responses=ERRORS)
    async def fill(name: str, body: FillRequest) -> dict:
        """Top-k tokens for each [MASK] of a sentence (mlm runs)."""
        run = get_run(name, "mlm")
        return await call(run, text.fill, body.text, body.top_k)

    @app.post("/api/runs/{name}/attention", response_model=AttentionResponse, responses=ERRORS)
    async def attention(name: str, body: AttentionRequest) -> dict:
        """Token x token attention weights per layer and head (mlm and clm runs)."""
        run = get_run(name, "mlm", "clm")
        return await call(run, text.attention, body.text, body.max_tokens)

    @app.post("/api/runs/{name}/generate", responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}})
    async def generate(name: str, body: GenerateRequest) -> StreamingResponse:
        """Continue a prompt, streamed as server-sent events: ``token`` events ``{"delta"}`` (or ``{"text"}``
        when decoding rewrote the text so far), then one ``done`` event ``{"text", "tokens"}``."""
        run = get_run(name, "clm")
        ids = text.prompt_ids(run, body.prompt)
        await served.enter(run)  # released by the generation's worker when it ends
        return StreamingResponse(_events(run, ids, body), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    # -------------------------------------------------------------------------------------------- tables
    @app.post("/api/runs/{name}/impute", responses={**ERRORS, 200: {"content": {"text/csv": {}}}})
    async def impute(
        name: str,
        file: Annotated[UploadFile, File(description="a CSV with missing cells (empty / NA)")],
        exclude: Annotated[list[str], Form(description=EXCLUDE + " to pass through unchanged")] = [],  # noqa: B006
    ) -> Response:
        """The uploaded CSV with its missing cells filled (every other cell keeps its text), as a download."""
        run = get_run(name, "table")
        csv_text, counts = await call(run, tables.impute, await read_upload(file, "file"), exclude)
        headers = {"Content-Disposition": 'attachment; filename="imputed.csv"',
                   "X-Masklab-Filled": json.dumps(counts)}  # fmt: skip
        return Response(csv_text, media_type="text/csv", headers=headers)

    @app.post("/api/runs/{name}/score", response_model=ScoreResponse, responses=ERRORS)
    async def score(
        name: str,
        file: Annotated[UploadFile, File(description="a CSV with the run's columns")],
        exclude: Annotated[list[str], Form(description=EXCLUDE + " that are not features")] = [],  # noqa: B006
    ) -> dict:
        """Anomaly score per row (higher = odder) and each cell's reconstruction error."""
        run = get_run(name, "table")
        return await call(run, tables.score, await read_upload(file, "file"), exclude)

    series_api.add_routes(app, served)
    segment_api.add_routes(app, served)
    return app


_RUNNING: set[asyncio.Future] = set()


def _events(run: LoadedRun, ids: list[int], body: GenerateRequest) -> AsyncIterator[str]:
    """Server-sent events of one generation. The model runs in a worker thread started now (so it ends, and
    releases the run's gate the endpoint entered, even when the response is never sent); a client that leaves
    stops it at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
    cancelled = threading.Event()

    def put(event: str, data: dict) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (event, data))

    def work() -> None:
        try:
            result = text.stream_generate(run, ids, max_tokens=body.max_tokens, temperature=body.temperature,
                                          top_k=body.top_k, seed=body.seed, emit=lambda d: put("token", d),
                                          cancelled=cancelled)  # fmt: skip
            event = ("done", result)
        except InputError as err:
            event = ("error", {"error": err.message, "field": err.field})
        except Exception:  # the stream has started: report in band, keep the traceback in the log
            log.exception("masklab serve: generation failed")
            event = ("error", {"error": "internal error (the server log has the details)", "field": None})
        finally:
            run.lock.release()  # before the last event: the next request finds the model free
        put(*event)

    try:
        worker = asyncio.ensure_future(run_in_threadpool(work))
    except BaseException:
        run.lock.release()
        raise
    _RUNNING.add(worker)  # the loop keeps only a weak reference to a task; a client may leave before it ends
    worker.add_done_callback(_RUNNING.discard)

    async def stream() -> AsyncIterator[str]:
        try:
            while True:
                event, data = await queue.get()
                yield f"event: {event}\ndata: {json.dumps(data)}\n\n"
                if event != "token":
                    break
        finally:
            cancelled.set()  # the worker stops at its next token and releases the run's gate

    return stream()
