"""Request and response bodies of the HTTP API (pydantic models, shown in the OpenAPI document)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simsearch.validation import COLLECTION_NAME_CHARS, INT64_RANGE

__all__ = [
    "CollectionInfo",
    "CountItems",
    "Counted",
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
    "UpdateItems",
    "Updated",
    "WriteItems",
]

#: Collection names become folder names (see ``validation.COLLECTION_NAME_CHARS``).
NAME_CHARS = COLLECTION_NAME_CHARS
#: The same rule as a JSON-schema pattern; pydantic checks it with the Rust regex engine, whose
#: ``$`` (without the multi-line flag) matches only at the very end, as in ECMAScript.
NAME_PATTERN = rf"^{NAME_CHARS}$"
MAX_BATCH = 10_000


class _Strict(BaseModel):
    # strict: "2" is not the number 2, nor true the number 1 (JSON has its own types).
    model_config = ConfigDict(extra="forbid", strict=True)


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
    multivector: bool = Field(
        default=False,
        description="items are sets of dim-d vectors scored by MaxSim (the token encoder "
        "minilm-l6-v2-tokens makes one too)",
    )


class EncoderInfo(BaseModel):
    name: str
    version: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class CollectionInfo(BaseModel):
    """A collection's description; in a listing, a collection that cannot be opened has
    only ``name`` and ``error``, so one damaged collection does not hide the others."""

    name: str
    count: int | None = None
    metric: str | None = None
    dim: int | None = None
    encoder: EncoderInfo | None = None
    seq: int | None = None
    size_bytes: int | None = None
    index: str | None = None
    migration: dict[str, Any] | None = Field(
        default=None, description="the model upgrade in progress, if any"
    )
    fields: list[dict[str, Any]] | None = Field(
        default=None,
        description="the metadata fields items hold, the most common first: each with "
        "'field' (its path as filters write it), 'count' (items holding it) and 'types' "
        "(items per JSON type)",
    )
    field_indexes: list[dict[str, Any]] | None = Field(
        default=None,
        description="the payload indexes: each with 'field', 'kind', 'window' and 'bytes' "
        "(memory, null until built)",
    )
    multivector: dict[str, Any] | None = Field(
        default=None,
        description="a multi-vector collection's encoding of its sets (MUVERA: k_sim, d_proj, "
        "r_reps, d_final, seed), storage and token dimension; null for one vector per item",
    )
    error: ErrorDetail | None = Field(
        default=None,
        description="why the collection cannot be opened (listing only); the other fields "
        "are then null",
    )


class WriteItems(_Strict):
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    vectors: list[list[float]] | None = Field(default=None, max_length=MAX_BATCH)
    multivectors: list[list[list[float]]] | None = Field(
        default=None,
        max_length=MAX_BATCH,
        description="A multi-vector collection's items: one set of vectors per id.",
    )
    texts: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    metadata: list[dict[str, Any] | None] | None = Field(default=None, max_length=MAX_BATCH)


class GetItems(_Strict):
    ids: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_BATCH, description="in the order wanted"
    )
    where: dict[str, Any] | None = Field(default=None, description="a metadata filter")
    where_text: dict[str, str] | None = Field(
        default=None, description='a text filter: {"$contains": "word"}, {"$not_contains": ...}'
    )
    limit: int | None = Field(
        default=None, ge=0, le=MAX_BATCH, description=f"at most this many (and {MAX_BATCH:,})"
    )
    offset: int = Field(
        default=0, ge=0, le=INT64_RANGE[1], description="skip this many first (paging)"
    )
    include: list[Literal["metadata", "text", "vector"]] = Field(
        default=["metadata", "text"], description="the parts of each item sent back"
    )
    missing: Literal["error", "skip"] = Field(
        default="error", description="a missing id: 404 item_not_found, or left out"
    )


class FieldIndexBody(_Strict):
    field: str = Field(min_length=1, max_length=1000, examples=["lang"])
    kind: Literal["keyword", "integer", "float", "bool", "datetime"]
    window: bool = False


class DropFieldIndex(_Strict):
    field: str = Field(min_length=1, max_length=1000)


class FieldIndexChanged(BaseModel):
    changed: bool
    field_indexes: list[dict[str, Any]]


class ExplainSearch(_Strict):
    where: dict[str, Any] | None = Field(default=None, description="a metadata filter")
    exact: bool = False


class CountItems(_Strict):
    where: dict[str, Any] | None = Field(default=None, description="a metadata filter")
    where_text: dict[str, str] | None = Field(
        default=None, description='a text filter: {"$contains": "word"}, {"$not_contains": ...}'
    )


class Counted(BaseModel):
    count: int


class UpdateItems(_Strict):
    ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    metadata: list[dict[str, Any] | None] | None = Field(default=None, max_length=MAX_BATCH)
    merge: bool = Field(
        default=True, description="merge metadata into the stored one key by key, or replace it"
    )
    texts: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    vectors: list[list[float]] | None = Field(default=None, max_length=MAX_BATCH)


class Updated(BaseModel):
    updated: int


class DeleteItems(_Strict):
    ids: list[str] | None = Field(default=None, max_length=MAX_BATCH)
    where: dict[str, Any] | None = None
    all: bool = Field(
        default=False,
        description="true (without ids or where) deletes every item; a filter that "
        "matches everything is refused without it",
    )


class Deleted(BaseModel):
    deleted: int


class ItemOut(BaseModel):
    id: str
    vector: list[float] | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None


class ItemsOut(BaseModel):
    items: list[ItemOut]


class SearchRequest(_Strict):
    query: str | list[str] | list[float] | list[list[float]] | list[list[list[float]]] = Field(
        description="A text, a list of texts, one vector, or a batch of vectors; in a "
        "multi-vector collection a 2-D array is one set of query vectors, a 3-D one a batch."
    )
    k: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000, description="skip the best hits first")
    where: dict[str, Any] | None = None
    min_relevance: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Keep hits at least this relevant."
    )
    cutoff: Literal["f1"] | None = Field(
        default=None, description="'f1': per query, the set with the best expected F1."
    )
    mode: Literal["dense", "lexical", "hybrid"] = Field(
        default="dense", description="Vectors, BM25 of the texts, or both fused."
    )
    fusion: Literal["convex", "rrf"] = Field(default="convex", description="Hybrid fusion.")
    alpha: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Dense weight of convex fusion."
    )
    candidates: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="A multi-vector collection's MaxSim rerank depth (FDE candidates).",
    )
    where_text: dict[str, str] | None = Field(
        default=None, description='a text filter: {"$contains": "word"}, {"$not_contains": ...}'
    )


class HitOut(BaseModel):
    id: str
    score: float
    metadata: dict[str, Any]
    text: str | None
    relevance: float | None = Field(
        default=None, description="Calibrated relevance in [0, 1]; null when uncalibrated."
    )
    dense_score: float | None = Field(default=None, description="Lexical or hybrid: similarity.")
    lexical_score: float | None = Field(default=None, description="Lexical or hybrid: BM25.")


class SearchResponse(BaseModel):
    results: list[list[HitOut]] = Field(description="One row of hits per query, best first.")
