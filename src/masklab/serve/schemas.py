"""Request and response bodies of the JSON API (they make the OpenAPI schema at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_TEXT = 4000  # characters of a sentence or prompt


class RunInfo(BaseModel):
    name: str = Field(description="the run's name in URLs (its directory name, made unique)")
    kind: str = Field(description="mae | mlm | clm | table | series | segment (a segmentation head folder)")
    details: dict[str, Any] = Field(
        description="what the page needs: image size and patch grid, columns, limits; "
        "'segmentation' for an MAE run with a trained head"
    )
    notes: list[str] = Field(default_factory=list, description="what this run cannot offer here, and why")


class Health(BaseModel):
    status: str
    runs: int


class FillRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT, description="a sentence with one or more [MASK] tokens")
    top_k: int = Field(5, ge=1, le=50, description="candidates per [MASK]")


class Candidate(BaseModel):
    token: str
    probability: float


class MaskFill(BaseModel):
    position: int = Field(description="token position of the [MASK] (0 = [CLS])")
    candidates: list[Candidate]


class FillResponse(BaseModel):
    mask_token: str
    masks: list[MaskFill]


class AttentionRequest(BaseModel):
    text: str = Field(max_length=MAX_TEXT)
    max_tokens: int = Field(48, ge=1, le=64, description="tokens kept, specials included")


class AttentionResponse(BaseModel):
    tokens: list[str]
    layers: int
    heads: int
    causal: bool
    weights: list[list[list[list[float]]]] = Field(description="[layer][head][query][key], rows sum to 1")
    notes: list[str]


class GenerateRequest(BaseModel):
    prompt: str = Field(max_length=MAX_TEXT, description="text to continue")
    max_tokens: int = Field(100, ge=1, le=1000)
    temperature: float = Field(0.8, ge=0.0, le=5.0, allow_inf_nan=False,
                               description="0 = greedy; any finite number in [0, 5] (a tiny one samples among the "
                               "likeliest tokens)")  # fmt: skip
    top_k: int = Field(40, ge=0, le=100000, description="sample among the k likeliest tokens (0 = all)")
    seed: int = Field(0, ge=0, lt=2**63)


class ReconstructResponse(BaseModel):
    masked: str = Field(description="one character per patch, row-major, 1 = hidden")
    hidden_fraction: float
    psnr_hidden: float = Field(description="dB on the hidden pixels of reconstruction + visible")
    original: str = Field(description="PNG data URL")
    masked_input: str
    reconstruction: str
    pasted: str


class RolloutResponse(BaseModel):
    grid: list[int] = Field(description="[gh, gw] patches")
    weights: list[float] = Field(description="[CLS] attention rollout per patch, scaled to [0, 1]")
    image: str = Field(description="the image read, PNG data URL")


class ScoredRow(BaseModel):
    row: int = Field(description="1-based data row of the upload")
    score: float | None
    cells: list[str]
    errors: list[float | None] = Field(description="per-cell reconstruction error (null where missing)")


class TopCell(BaseModel):
    row: int
    column: str
    error: float | None


class ScoreResponse(BaseModel):
    columns: list[str]
    total_rows: int
    rows: list[ScoredRow] = Field(description="the highest-scoring rows first")
    top_cells: list[TopCell]


Values = list[list[float | None]]


class SeriesResponse(BaseModel):
    name: str = Field(description="the series: its id in a long-format file, else FILE[i] (0-based)")
    count: int = Field(description="series in the uploaded file (or built-in examples)")
    length: int = Field(description="T, its time steps")
    values: Values = Field(description="(T, C) time-major; null = not observed")


class SeriesReconstructResponse(SeriesResponse):
    masking: str
    seed: int
    hidden_fraction: float = Field(description="share of the (step, channel) values hidden")
    hidden: list[str] = Field(description="per channel, one character per step, 1 = in a hidden patch")
    reconstruction: Values = Field(description="(T, C) in the data's units (use it where hidden)")
    mse_hidden: float | None = Field(description="mean squared error on the hidden observed values")
    image: str = Field(description="PNG data URL: hidden patches shaded, reconstruction dashed")


class ForecastResponse(SeriesResponse):
    horizon: int
    channel: int = Field(description="the channel drawn in the picture")
    forecast: Values = Field(description="(H, C): the steps after the series' end, in the data's units")
    image: str = Field(description="PNG data URL: history, forecast, the horizon shaded")


class AnomalyResponse(SeriesResponse):
    score: float = Field(description="the series' score: mean of the per-step scores")
    per_step: list[float | None] = Field(description="(T,) squared error with the step's patch hidden, normalised "
                                         "units; higher = more anomalous; null = nothing observed")  # fmt: skip
    top_steps: list[int] = Field(description="the highest-scoring steps, highest first (0-based)")


class SegmentResponse(BaseModel):
    width: int
    height: int
    classes: int = Field(description="classes of the head (0 = background)")
    box: list[int] | None = Field(description="[x0, y0, x1, y1] when given")
    subject_fraction: float = Field(description="share of the pixels predicted subject")
    image: str = Field(description="the image read, PNG data URL")
    mask: str = Field(description="the mask PNG masklab segment writes: gray 0/255 (palette for > 2 classes)")
    overlay: str = Field(description="the image with the subject tinted red")
    side_by_side: str = Field(description="image | mask | overlay")


class ErrorResponse(BaseModel):
    error: str
    field: str | None = Field(description="the request field at fault, when one is")
