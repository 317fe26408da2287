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

from simsearch.errors import InvalidArgumentError, InvalidFilterError, NotACollectionError
from simsearch.filters import field_keys
from simsearch.multivector.fde import MultiVector
from simsearch.types import Metric

__all__ = [
    "FORMAT_VERSION",
    "HNSW",
    "INDEX_NAMES",
    "IVFPQ",
    "CollectionConfig",
    "EncoderSpec",
    "Flat",
    "IndexConfig",
    "index_from_name",
]

#: Bumped whenever the on-disk layout changes incompatibly.
FORMAT_VERSION = 1
#: The tokenisation of the lexical index (``index/tokens.py``): how texts split into words,
#: their stemmer, and the stopwords left out. Saved with each collection.
LEXICAL_SPEC = "words nfkd-marks-removed casefold; snowball english; stopwords lucene-english"
#: The tokenisation of schema 5's FTS5 index: a collection that names it gets its lexical
#: index built anew with ``LEXICAL_SPEC`` (it is derived data).
FTS5_LEXICAL_SPEC = "fts5 porter unicode61 remove_diacritics 2; stopwords lucene-english"


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


#: How an approximate index keeps its search vectors in memory.
QUANTIZATIONS = ("none", "int8", "binary")


def _check_ints(owner: object, limits: tuple[tuple[str, int, int], ...]) -> None:
    for name, low, high in limits:
        value = getattr(owner, name)
        if value is None and name in getattr(owner, "_optional", ()):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidArgumentError(
                f"{type(owner).__name__} {name} must be an integer in [{low}, {high}]"
            )


@dataclass(frozen=True, kw_only=True)
class HNSW:
    """A hierarchical navigable small-world graph for approximate search.

    Args:
        m: links per node (the paper's M); more links, better recall, more memory.
        ef_construction: candidate list size while building (efConstruction).
        ef_search: candidate list size while searching (ef), the default of ``search(ef=...)``.
        quantization: ``"none"`` keeps float32 vectors in the graph (hnswlib);
            ``"int8"`` (a quarter of the memory) and ``"binary"`` (one bit a
            dimension, for high-dimensional embeddings) keep compressed codes
            (FAISS) and rescore an oversampled candidate set with the stored
            float vectors, so scores stay exact.
        rescore: how many candidates per hit a quantized graph fetches for
            rescoring (``k * rescore``), the default of ``search(rescore=...)``.

    Collections of at most ``exact_below`` items, and filtered searches whose
    filter leaves at most that many (or a tenth of the collection), are searched
    exactly instead (see :mod:`simsearch.search.plan`).

    >>> HNSW(m=32)
    HNSW(m=32, ef_construction=200, ef_search=64, exact_below=20000, quantization='none', rescore=4)
    """

    kind: ClassVar[str] = "hnsw"
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 64
    exact_below: int = 20_000
    quantization: str = "none"
    rescore: int = 4

    def __post_init__(self) -> None:
        _check_ints(
            self,
            (
                ("m", 2, 256),
                ("ef_construction", 1, 100_000),
                ("ef_search", 1, 100_000),
                ("exact_below", 0, 10**9),
                ("rescore", 1, 1000),
            ),
        )
        if self.quantization not in QUANTIZATIONS:
            raise InvalidArgumentError(
                f"HNSW quantization must be one of {', '.join(QUANTIZATIONS)}, "
                f"not {self.quantization!r}"
            )


@dataclass(frozen=True, kw_only=True)
class IVFPQ:
    """An inverted file of product-quantized codes (FAISS), for collections whose
    float vectors do not fit in memory: only the codes are held, and an oversampled
    candidate set is rescored with the stored float vectors.

    Args:
        nlist: how many lists (k-means cells); ``None`` picks about 4 sqrt(n) when
            the index is trained.
        m: sub-quantizers, bytes a vector at 8 bits; ``None`` picks one per 4
            dimensions (must divide the dimension rounded up to a multiple of 8).
        nbits: bits per sub-quantizer code.
        nprobe: lists visited per query, the default of ``search(nprobe=...)``.
        rescore: candidates fetched per hit for rescoring, the default of
            ``search(rescore=...)``.

    Until a collection holds more than ``exact_below`` items its vectors stay in
    memory and are searched exactly; then the index is trained on them.

    >>> IVFPQ(nprobe=64).nprobe
    64
    """

    kind: ClassVar[str] = "ivfpq"
    _optional: ClassVar[tuple[str, ...]] = ("nlist", "m")
    nlist: int | None = None
    m: int | None = None
    nbits: int = 8
    nprobe: int = 32
    rescore: int = 10
    exact_below: int = 20_000

    def __post_init__(self) -> None:
        _check_ints(
            self,
            (
                ("nlist", 1, 1 << 20),
                ("m", 1, 4096),
                ("nbits", 4, 12),
                ("nprobe", 1, 1 << 20),
                ("rescore", 1, 1000),
                ("exact_below", 0, 10**9),
            ),
        )

    def check_dim(self, dim: int) -> None:
        """Raise unless the sub-quantizers split ``dim`` (rounded up to a multiple of 8) evenly."""
        padded = -(-dim // 8) * 8
        if self.m is not None and padded % self.m:
            raise InvalidArgumentError(
                f"IVFPQ m={self.m} must divide {padded} (the dimension {dim} rounded up to a "
                "multiple of 8)"
            )


def index_name(index: IndexConfig) -> str:
    """A short name of the index kind: flat, hnsw, hnsw-int8, hnsw-binary or ivfpq.

    >>> index_name(HNSW(quantization="int8"))
    'hnsw-int8'
    """
    if isinstance(index, HNSW) and index.quantization != "none":
        return f"hnsw-{index.quantization}"
    return index.kind


def index_from_name(name: str) -> IndexConfig:
    """The index kind called ``name`` (as :func:`index_name` calls it), default settings.

    >>> index_from_name("hnsw-int8") == HNSW(quantization="int8")
    True
    """
    kinds: dict[str, IndexConfig] = {
        "flat": Flat(),
        "hnsw": HNSW(),
        "hnsw-int8": HNSW(quantization="int8"),
        "hnsw-binary": HNSW(quantization="binary"),
        "ivfpq": IVFPQ(),
    }
    if name not in kinds:
        raise InvalidArgumentError(
            f"unknown index kind {name!r}; valid kinds are: {', '.join(INDEX_NAMES)}"
        )
    return kinds[name]


def check_index_fits(index: IndexConfig, dim: int | None) -> None:
    """Raise when ``index`` cannot hold ``dim``-dimensional vectors."""
    if dim is not None and isinstance(index, IVFPQ):
        index.check_dim(dim)


IndexConfig = Flat | HNSW | IVFPQ
#: The short names of the index kinds, as :func:`index_name` gives them.
INDEX_NAMES = ("flat", "hnsw", "hnsw-int8", "hnsw-binary", "ivfpq")
_INDEX_KINDS: dict[str, type[Flat] | type[HNSW] | type[IVFPQ]] = {
    "flat": Flat,
    "hnsw": HNSW,
    "ivfpq": IVFPQ,
}


def index_to_dict(index: IndexConfig) -> dict[str, Any]:
    return {"kind": index.kind, **{f.name: getattr(index, f.name) for f in fields(index)}}


def index_from_dict(data: dict[str, Any]) -> IndexConfig:
    kind = data.get("kind")
    if kind not in _INDEX_KINDS:
        valid = ", ".join(_INDEX_KINDS)
        raise InvalidArgumentError(f"unknown index kind {kind!r}; valid kinds are: {valid}")
    params = {k: v for k, v in data.items() if k != "kind"}
    return _INDEX_KINDS[kind](**params)


#: Kinds of payload index (Qdrant's names): which values of a metadata field it serves.
FIELD_KINDS = ("keyword", "integer", "float", "bool", "datetime")


@dataclass(frozen=True)
class FieldIndexSpec:
    """A payload index declared on one metadata field (see ``Collection.index_field``).

    ``field`` is a filter path (dotted, with ``\\.`` for a dot inside a key). ``kind``
    says what the field holds: ``keyword`` (strings), ``integer``, ``float``, ``bool``, or
    ``datetime`` (ISO 8601 strings, compared as text as filters compare them). ``window``
    (numeric kinds) also builds the window-search structure for range filters.

    >>> FieldIndexSpec("year", "integer")
    FieldIndexSpec(field='year', kind='integer', window=False)
    >>> FieldIndexSpec("year", "number")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidArgumentError: unknown field index kind 'number'; valid kinds are: ...
    """

    field: str
    kind: str
    window: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise InvalidArgumentError(f"a field index needs a field path, not {self.field!r}")
        if self.kind not in FIELD_KINDS:
            raise InvalidArgumentError(
                f"unknown field index kind {self.kind!r}; valid kinds are: {', '.join(FIELD_KINDS)}"
            )
        if type(self.window) is not bool:
            raise InvalidArgumentError(f"window must be true or false, not {self.window!r}")
        if self.window and self.kind not in ("integer", "float"):
            raise InvalidArgumentError(
                f"window=True needs a numeric field (kind 'integer' or 'float'), not {self.kind!r}"
            )
        try:
            field_keys(self.field)
        except InvalidFilterError as exc:
            raise InvalidArgumentError(str(exc)) from None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(field_keys(self.field))


@dataclass(frozen=True)
class CollectionConfig:
    """Metric, dimension and encoder of one collection.

    ``dim`` is ``None`` until the first vectors fix it; ``encoder`` is ``None``
    for a collection that has only ever been given vectors. ``index`` is the
    kind of index kept beside the data (derived, so it may change on reopen).
    ``lexical`` names the tokenisation of the lexical index of texts.

    >>> c = CollectionConfig(metric=Metric.COSINE, dim=3)
    >>> CollectionConfig.from_json(c.to_json()) == c
    True
    """

    metric: Metric
    dim: int | None = None
    encoder: EncoderSpec | None = None
    index: IndexConfig = Flat()
    format_version: int = FORMAT_VERSION
    fields: tuple[FieldIndexSpec, ...] = ()  # payload indexes, by field path
    lexical: str = LEXICAL_SPEC
    #: A multi-vector collection's encoding and storage of token sets (``dim`` is then
    #: the dimension of the encodings the index holds, and ``metric`` their inner product).
    multivector: MultiVector | None = None

    @property
    def token_dim(self) -> int | None:
        """The dimension of what a write gives: a vector, or one vector of a set."""
        return self.multivector.dim if self.multivector is not None else self.dim

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["metric"] = self.metric.value
        data["index"] = index_to_dict(self.index)
        if self.multivector is None:
            data.pop("multivector")
        else:
            data["multivector"] = self.multivector.to_dict()
        return json.dumps(data, sort_keys=True)

    @staticmethod
    def from_json(text: str) -> CollectionConfig:
        """The config saved as ``text``; anything that is not one (damaged, or of the
        wrong shape) raises :class:`~simsearch.NotACollectionError`."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON object was expected, not {type(data).__name__}")
            dim, encoder, index = data.get("dim"), data.get("encoder"), data.get("index")
            if dim is not None and (type(dim) is not int or dim < 1):
                raise TypeError(f"dim is {dim!r}, not a positive integer")
            if encoder is not None:
                if not isinstance(encoder, dict) or set(encoder) != {"name", "version", "dim"}:
                    raise TypeError(f"encoder is {encoder!r}")
                if not all(isinstance(encoder[f], str) for f in ("name", "version")) or (
                    type(encoder["dim"]) is not int
                ):
                    raise TypeError(f"encoder is {encoder!r}")
            if index is not None and not isinstance(index, dict):
                raise TypeError(f"index is {index!r}")
            lexical = data.get("lexical", LEXICAL_SPEC)
            if lexical == FTS5_LEXICAL_SPEC:
                lexical = LEXICAL_SPEC
            if lexical != LEXICAL_SPEC:
                raise TypeError(f"its lexical tokenisation {lexical!r} is not one this reads")
            version = data["format_version"]
            if type(version) is not int:
                raise TypeError(f"format_version is {version!r}")
            declared = data.get("fields", [])
            if not isinstance(declared, list) or not all(
                isinstance(f, dict) and set(f) == {"field", "kind", "window"} for f in declared
            ):
                raise TypeError(f"fields is {declared!r}")
            multi = data.get("multivector")
            if multi is not None and not isinstance(multi, dict):
                raise TypeError(f"multivector is {multi!r}")
            config = CollectionConfig(
                metric=Metric.parse(data["metric"]),
                dim=dim,
                encoder=EncoderSpec(**encoder) if encoder else None,
                index=index_from_dict(index or {"kind": "flat"}),
                format_version=version,
                fields=tuple(FieldIndexSpec(**f) for f in declared),
                lexical=lexical,
                multivector=MultiVector.from_dict(multi) if multi is not None else None,
            )
        except (ValueError, KeyError, TypeError, InvalidArgumentError) as exc:
            raise NotACollectionError(f"the saved collection config is unreadable: {exc}") from None
        if config.format_version > FORMAT_VERSION:
            raise NotACollectionError(
                f"the collection was written by a newer simsearch (format {config.format_version}, "
                f"this one reads up to {FORMAT_VERSION}); upgrade simsearch"
            )
        return config
