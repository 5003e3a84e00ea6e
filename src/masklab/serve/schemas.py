"""Request and response bodies of the JSON API (they make the OpenAPI schema at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_TEXT = 4000  # characters of a sentence or prompt


class RunInfo(BaseModel):
    name: str = Field(description="the run's name in URLs (its directory name, made unique)")
    kind: str = Field(description="mae | mlm | clm | table")
    details: dict[str, Any] = Field(description="what the page needs: image size and patch grid, columns, limits")
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
    temperature: float = Field(0.8, ge=0.0, le=5.0, description="0 = greedy")
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


class ErrorResponse(BaseModel):
    error: str
    field: str | None = Field(description="the request field at fault, when one is")
