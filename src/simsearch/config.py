"""The saved configuration of a collection.

It is written beside the data the first time it is known and never edited in
place: a change (the dimension fixed by the first write, the encoder bound by
the first text) produces a new frozen object that is saved in the same
transaction as the write that caused it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from simsearch.errors import InvalidArgumentError, NotACollectionError
from simsearch.types import Metric

__all__ = ["FORMAT_VERSION", "HNSW", "CollectionConfig", "EncoderSpec", "Flat", "IndexConfig"]

#: Bumped whenever the on-disk layout changes incompatibly.
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EncoderSpec:
    """Which encoder made a collection's vectors: its registry name, version and dimension."""

    name: str
    version: str
    dim: int


@dataclass(frozen=True, kw_only=True)
class Flat:
    """Exact search over every vector: always correct, and fast up to about a million vectors.

    >>> Flat()
    Flat()
    """

    kind: ClassVar[str] = "flat"


@dataclass(frozen=True, kw_only=True)
class HNSW:
    """A hierarchical navigable small-world graph (hnswlib) for approximate search.

    Args:
        m: links per node (the paper's M); more links, better recall, more memory.
        ef_construction: candidate list size while building (efConstruction).
        ef_search: candidate list size while searching (ef), the default of ``search(ef=...)``.

    Collections of at most ``exact_below`` items, and filtered searches whose
    filter leaves at most that many (or a tenth of the collection), are searched
    exactly instead (see :mod:`simsearch.planner`).

    >>> HNSW(m=32)
    HNSW(m=32, ef_construction=200, ef_search=64, exact_below=20000)
    """

    kind: ClassVar[str] = "hnsw"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 64
    exact_below: int = 20_000

    def __post_init__(self) -> None:
        for name, low, high in (
            ("m", 2, 256),
            ("ef_construction", 1, 100_000),
            ("ef_search", 1, 100_000),
            ("exact_below", 0, 10**9),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidArgumentError(f"HNSW {name} must be an integer in [{low}, {high}]")


IndexConfig = Flat | HNSW
_INDEX_KINDS: dict[str, type[Flat] | type[HNSW]] = {"flat": Flat, "hnsw": HNSW}


def index_to_dict(index: IndexConfig) -> dict[str, Any]:
    return {"kind": index.kind, **{f.name: getattr(index, f.name) for f in fields(index)}}


def index_from_dict(data: dict[str, Any]) -> IndexConfig:
    kind = data.get("kind")
    if kind not in _INDEX_KINDS:
        raise InvalidArgumentError(f"unknown index kind {kind!r}; valid kinds are: flat, hnsw")
    params = {k: v for k, v in data.items() if k != "kind"}
    return _INDEX_KINDS[kind](**params)


@dataclass(frozen=True)
class CollectionConfig:
    """Metric, dimension and encoder of one collection.

    ``dim`` is ``None`` until the first vectors fix it; ``encoder`` is ``None``
    for a collection that has only ever been given vectors. ``index`` is the
    kind of index kept beside the data (derived, so it may change on reopen).

    >>> c = CollectionConfig(metric=Metric.COSINE, dim=3)
    >>> CollectionConfig.from_json(c.to_json()) == c
    True
    """

    metric: Metric
    dim: int | None = None
    encoder: EncoderSpec | None = None
    index: IndexConfig = Flat()
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["metric"] = self.metric.value
        data["index"] = index_to_dict(self.index)
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CollectionConfig:
        try:
            data = json.loads(text)
            encoder = data.get("encoder")
            config = CollectionConfig(
                metric=Metric.parse(data["metric"]),
                dim=data.get("dim"),
                encoder=EncoderSpec(**encoder) if encoder else None,
                index=index_from_dict(data.get("index") or {"kind": "flat"}),
                format_version=int(data["format_version"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise NotACollectionError(f"the saved collection config is unreadable: {exc}") from None
        if config.format_version > FORMAT_VERSION:
            raise NotACollectionError(
                f"the collection was written by a newer simsearch (format {config.format_version}, "
                f"this one reads up to {FORMAT_VERSION}); upgrade simsearch"
            )
        return config
