"""The series endpoints (``/api/runs/{name}/series/...``): a series from an uploaded file or a built-in example,
its masked patches reconstructed, its forecast and its per-step anomaly scores (:mod:`masklab.serve.series`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from masklab.data.series import SeriesSet
from masklab.serve import series
from masklab.serve.errors import check_example
from masklab.serve.routing import ERRORS, Runs
from masklab.serve.runs import LoadedRun
from masklab.serve.schemas import AnomalyResponse, ForecastResponse, SeriesReconstructResponse, SeriesResponse

FileField = Annotated[UploadFile | None, File(description=".npy, .npz, long .csv / .csv.gz / .parquet; or 'example'")]
ExampleField = Annotated[int | None, Form(description="index of a built-in (held-out) example of the run's data")]
IndexField = Annotated[int, Form(description="which series of the uploaded file (0-based)")]


def add_routes(app: FastAPI, runs: Runs) -> None:
    async def one_series(run: LoadedRun, file: UploadFile | None, example: int | None,
                         index: int) -> tuple[SeriesSet, int]:  # fmt: skip
        upload = None
        if file is not None:
            data = await runs.read(file, "file")
            upload = await run_in_threadpool(series.read_upload, run, data, file.filename or "upload")  # parsing
        return series.choose(run, upload, example, index)

    @app.get("/api/runs/{name}/series/examples/{index}", response_model=SeriesResponse, responses=ERRORS)
    async def series_example(name: str, index: int) -> dict:
        """A built-in (held-out) example of the run's own data: its values, for a preview."""
        run = runs.get(name, "series")
        check_example(run.examples, index, field="index", status=404)
        one, total = series.choose(run, None, index, 0)
        return series.summary(one, total)

    @app.post("/api/runs/{name}/series/reconstruct", response_model=SeriesReconstructResponse, responses=ERRORS)
    async def series_reconstruct(
        request: Request,
        name: str,
        file: FileField = None,
        example: ExampleField = None,
        index: IndexField = 0,
        masking: Annotated[str, Form(description="random | tail (the last patches)")] = "random",
        seed: Annotated[int, Form(ge=0, lt=2**63)] = 0,
    ) -> dict:
        """Hide patches of one series (at the model's training ratio) and show what the model fills in."""
        run = runs.get(name, "series")
        await runs.filled(request, "example", "index", "masking", "seed")
        one, count = await one_series(run, file, example, index)
        return await runs.call(run, series.reconstruct, one, count, masking, seed)

    @app.post("/api/runs/{name}/series/forecast", response_model=ForecastResponse, responses=ERRORS)
    async def series_forecast(
        request: Request,
        name: str,
        file: FileField = None,
        example: ExampleField = None,
        index: IndexField = 0,
        horizon: Annotated[int, Form(description="steps to forecast past the series' end")] = 8,
        channel: Annotated[int, Form(description="the channel drawn in the picture (0-based)")] = 0,
    ) -> dict:
        """The next ``horizon`` steps of one series (the model hides them and fills them in)."""
        run = runs.get(name, "series")
        await runs.filled(request, "example", "index", "horizon", "channel")
        one, count = await one_series(run, file, example, index)
        series.check_horizon(run, one, horizon)  # before the model's lock
        return await runs.call(run, series.forecast, one, count, horizon, channel)

    @app.post("/api/runs/{name}/series/anomalies", response_model=AnomalyResponse, responses=ERRORS)
    async def series_anomalies(
        request: Request, name: str, file: FileField = None, example: ExampleField = None, index: IndexField = 0
    ) -> dict:
        """Anomaly score per time step (each patch hidden once, its reconstruction error) and for the series."""
        run = runs.get(name, "series")
        await runs.filled(request, "example", "index")
        one, count = await one_series(run, file, example, index)
        return await runs.call(run, series.anomalies, one, count)
