"""Request and response bodies of the HTTP API (pydantic models, shown in the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CollectionInfo",
    "CreateCollection",
    "DeleteItems",
    "Deleted",
    "EncoderInfo",
    "ErrorBody",
    "ErrorDetail",
    "GetItems",
    "HitOut",
    "ItemOut",
    "ItemsOut",
    "SearchRequest",
    "SearchResponse",
    "WriteItems",
]

#: Collection names become folder names: letters, digits, '_', '-' and '.', not leading '.'.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
MAX_BATCH = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateCollection(_Strict):
    name: str = Field(pattern=NAME_PATTERN, examples=["docs"])
    metric: Literal["cosine", "dot", "l2"] = "cosine"
    dim: int | None = Field(default=None, ge=1, le=65_536)
    encoder: str | None = Field(default=None, examples=["minilm-l6-v2-int8"])
    index: Literal["flat", "hnsw", "hnsw-int8", "hnsw-binary", "ivfpq"] = Field(
        default="flat",
        description="flat (exact), hnsw (graph), hnsw-int8 or hnsw-binary (graph over "
        "compressed codes, rescored) or ivfpq (compressed inverted file, rescored)",
    )


class EncoderInfo(BaseModel):
    name: str
    version: str


class CollectionInfo(BaseModel):
    name: str
    count: int
    metric: str
    dim: int | None
    encoder: EncoderInfo | None
    seq: int
    size_bytes: int
    index: str
    migration: dict[str, Any] | None = Field(
        default=None, description="the model upgrade in progress, if any"
    )


class WriteItems(_Strict):
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    vectors: list[list[float]] | None = Field(default=None, max_length=MAX_BATCH)
    texts: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    metadata: list[dict[str, Any] | None] | None = Field(default=None, max_length=MAX_BATCH)


class GetItems(_Strict):
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class DeleteItems(_Strict):
    ids: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    where: dict[str, Any] | None = None


class Deleted(BaseModel):
    deleted: int


class ItemOut(BaseModel):
    id: str
    vector: list[float]
    text: str | None
    metadata: dict[str, Any]


class ItemsOut(BaseModel):
    items: list[ItemOut]


class SearchRequest(_Strict):
    query: str | list[str] | list[float] | list[list[float]] = Field(
        description="A text, a list of texts, one vector, or a batch of vectors."
    )
    k: int = Field(default=10, ge=1, le=1000)
    where: dict[str, Any] | None = None
    min_relevance: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Keep hits at least this relevant."
    )
    cutoff: Literal["f1"] | None = Field(
        default=None, description="'f1': per query, the set with the best expected F1."
    )


class HitOut(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any]
    text: str | None
    relevance: float | None = Field(
        default=None, description="Calibrated relevance in [0, 1]; null when uncalibrated."
    )


class SearchResponse(BaseModel):
    results: list[list[HitOut]] = Field(description="One row of hits per query, best first.")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
