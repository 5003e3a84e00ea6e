"""The segmentation endpoints (``/api/runs/{name}/segment/...``) of an MAE run with a trained head or of a head
folder: the subject mask of an image and the mask-guided edits (:mod:`masklab.serve.segments`)."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from masklab.serve import segments
from masklab.serve.routing import ERRORS, Runs
from masklab.serve.runs import LoadedRun
from masklab.serve.schemas import SegmentResponse

ImageField = Annotated[UploadFile | None, File(description="a PNG, JPEG, ... file, or give 'example'")]
ExampleField = Annotated[int | None, Form(description="index of a built-in (held-out) example of the head's data")]
BoxField = Annotated[
    str | None, Form(description="crop the mask to x0,y0,x1,y1 (pixels, exclusive end; outside is background)")
]
KINDS = ("mae", "segment")
PNG = {**ERRORS, 200: {"content": {"image/png": {}}}}


def add_routes(app: FastAPI, runs: Runs) -> None:
    async def read_image(run: LoadedRun, image: UploadFile | None, example: int | None) -> np.ndarray:
        segments.head(run)  # a 400 for an MAE run without a head, before reading anything
        data = None if image is None else await runs.read(image, "image")
        kind = None if image is None else image.content_type
        return await run_in_threadpool(segments.input_image, run, data, kind, example)  # decoding: off the loop

    @app.get("/api/runs/{name}/segment/examples/{index}", responses=PNG, response_class=Response)
    async def segment_example(name: str, index: int) -> Response:
        """A held-out image of the data the head was scored on, as PNG."""
        run = runs.get(name, *KINDS)
        return Response(segments.example_png(run, index), media_type="image/png")

    @app.post("/api/runs/{name}/segment/mask", response_model=SegmentResponse, responses=ERRORS)
    async def segment_mask(request: Request, name: str, image: ImageField = None, example: ExampleField = None,
                           box: BoxField = None) -> dict:  # fmt: skip
        """The subject mask of an image at its own size, with the overlay and side-by-side pictures."""
        run = runs.get(name, *KINDS)
        await runs.filled(request, "example")
        where = segments.parse_box(box)
        pixels = await read_image(run, image, example)
        return await runs.call(run, segments.mask, pixels, where)

    @app.post("/api/runs/{name}/segment/edit", responses=PNG, response_class=Response)
    async def segment_edit(
        request: Request,
        name: str,
        image: ImageField = None,
        example: ExampleField = None,
        box: BoxField = None,
        edit: Annotated[str, Form(description=" | ".join(segments.EDITS))] = "remove-background",
        radius: Annotated[float, Form(description="blur-background: Gaussian radius in pixels")] = 3.0,
        background: Annotated[UploadFile | None, File(description="replace-background: the new background")] = None,
    ) -> Response:
        """The edited image as PNG (an RGBA cut-out for remove-background); ``X-Masklab-Subject-Pixels`` says
        how many pixels the head found to be subject. Only the pixels the edit is about change."""
        run = runs.get(name, *KINDS)
        await runs.filled(request, "example", "edit", "radius")
        where = segments.parse_box(box)
        pixels = await read_image(run, image, example)
        backdrop = None
        if background is not None:
            data = await runs.read(background, "background")
            channels = pixels.shape[2]
            backdrop = await run_in_threadpool(segments.decode, data, background.content_type, channels, "background")
        png, subject = await runs.call(run, segments.edit, pixels, where, edit, radius, backdrop)
        headers = {"Content-Disposition": f'attachment; filename="{edit}.png"',
                   "X-Masklab-Subject-Pixels": str(subject)}  # fmt: skip
        return Response(png, media_type="image/png", headers=headers)
