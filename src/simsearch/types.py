"""Value types shared across simsearch: metrics, items and search results."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from simsearch.errors import CorruptCollectionError, InvalidArgumentError

__all__ = [
    "FloatArray",
    "Hit",
    "Item",
    "JSONObject",
    "Metric",
    "Results",
    "parse_stored_metadata",
]

FloatArray: TypeAlias = npt.NDArray[np.float32]
JSONObject: TypeAlias = dict[str, Any]


class Metric(StrEnum):
    """How similarity is measured. Scores are always higher-is-better.

    - ``cosine``: cosine similarity in [-1, 1].
    - ``dot``: inner product.
    - ``l2``: the *negative* Euclidean distance, so that 0 is identical and
      farther items score lower.

    Plain strings are accepted wherever a ``Metric`` is:

    >>> Metric.parse("cosine") is Metric.COSINE
    True
    """

    COSINE = "cosine"
    DOT = "dot"
    L2 = "l2"

    @classmethod
    def parse(cls, value: Metric | str) -> Metric:
        """Return the metric named ``value``; an unknown name lists the valid ones."""
        if isinstance(value, Metric):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise InvalidArgumentError(
                f"unknown metric {value!r}; valid metrics are: {valid}"
            ) from None


def parse_stored_metadata(text: str, item_id: str) -> JSONObject:
    """The metadata stored as ``text`` for ``item_id``; text that is not a JSON object (a
    damaged row) raises :class:`~simsearch.CorruptCollectionError` naming the item."""
    if text == "{}":
        return {}
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise CorruptCollectionError(
            f"the stored metadata of item {item_id!r} is not a JSON object (a damaged row); "
            "write the item again"
        )
    return parsed


@dataclass(frozen=True)
class Item:
    """One stored item, as ``Collection.get`` returns it (``vector`` is ``None`` when it
    was not asked for)."""

    id: str
    vector: FloatArray | None = field(repr=False)
    text: str | None = None
    metadata: JSONObject = field(default_factory=dict)
    #: A multi-vector item's set of vectors ``(n, dim)``, when ``get`` was asked for it.
    multivector: FloatArray | None = field(default=None, repr=False)


class Hit:
    """One search result: the item's id, its score (higher is better) and what it holds.

    ``relevance`` is the calibrated relevance in [0, 1] when the collection is
    calibrated (see :meth:`Collection.calibrate`), otherwise ``None``. A lexical or
    hybrid search (``search(mode=...)``) gives each hit its ``dense_score`` (the vector
    similarity) and ``lexical_score`` (BM25, 0 when no query word is in its text) beside
    ``score``, the one it is ranked by; a dense search leaves them ``None``.

    Hits are immutable. The metadata of a hit read from a collection is parsed
    only when it is first looked at, so large result sets that are used for
    their ids and scores do not pay for it.

    >>> h = Hit("a", 0.5, {"n": 1})
    >>> h
    Hit(id='a', score=0.5, metadata={'n': 1}, text=None)
    >>> h == Hit._from_stored("a", 0.5, '{"n": 1}', None)
    True
    """

    # Five slots, set once each: a search makes a hit per result. ``_extra`` holds
    # (relevance, dense_score, lexical_score) when any is given, else None; ``_meta`` the
    # metadata, or its stored JSON text until it is first looked at.
    __slots__ = ("_extra", "_meta", "id", "score", "text")
    id: str
    score: float
    text: str | None
    _extra: tuple[float | None, float | None, float | None] | None
    _meta: JSONObject | str

    def __init__(
        self,
        id: str,
        score: float,
        metadata: JSONObject | None = None,
        text: str | None = None,
        relevance: float | None = None,
        *,
        dense_score: float | None = None,
        lexical_score: float | None = None,
    ) -> None:
        _SET_ID(self, id)
        _SET_SCORE(self, score)
        _SET_TEXT(self, text)
        extra = (relevance, dense_score, lexical_score)
        _SET_EXTRA(self, None if extra == (None, None, None) else extra)
        _SET_META(self, {} if metadata is None else metadata)

    @classmethod
    def _from_stored(
        cls,
        id: str,
        score: float,
        metadata_json: str,
        text: str | None,
        relevance: float | None = None,
        sides: tuple[Any, Any] | None = None,
    ) -> Hit:
        # Each slot set once through its descriptor, without __init__ (several times
        # cheaper than object.__setattr__).
        hit = object.__new__(cls)
        _SET_ID(hit, id)
        _SET_SCORE(hit, score)
        _SET_TEXT(hit, text)
        if sides is not None:
            # A lexical search embeds nothing: its hits' dense score is NaN, shown as None.
            dense = float(sides[0])
            _SET_EXTRA(hit, (relevance, None if math.isnan(dense) else dense, float(sides[1])))
        else:
            _SET_EXTRA(hit, None if relevance is None else (relevance, None, None))
        _SET_META(hit, {} if metadata_json == "{}" else metadata_json)
        return hit

    @property
    def metadata(self) -> JSONObject:
        """The item's metadata (a JSON object)."""
        meta = self._meta
        if isinstance(meta, str):
            meta = parse_stored_metadata(meta, self.id)
            _SET_META(self, meta)
        return meta

    @property
    def relevance(self) -> float | None:
        return None if self._extra is None else self._extra[0]

    @property
    def dense_score(self) -> float | None:
        return None if self._extra is None else self._extra[1]

    @property
    def lexical_score(self) -> float | None:
        return None if self._extra is None else self._extra[2]

    def size_hint(self) -> int:
        """About how many bytes the hit takes as JSON (its id, text and metadata)."""
        meta = self._meta
        if not isinstance(meta, str):  # written as the store writes it: the same size
            meta = json.dumps(meta, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        return len(self.id) + len(self.text or "") + len(meta) + 64

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled and copied as a new hit: the slots refuse the setattr pickle would use.
        extra = self._extra or (None, None, None)
        return (_hit, (type(self), self.id, self.score, self.metadata, self.text, *extra))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Hit is immutable; cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Hit is immutable; cannot delete {name}")

    def _key(self) -> tuple[Any, ...]:
        return (
            self.id, self.score, self.metadata, self.text, self.relevance, self.dense_score,
            self.lexical_score,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hit) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # metadata is a dict

    def __repr__(self) -> str:
        shown = "" if self.relevance is None else f", relevance={self.relevance!r}"
        if self.lexical_score is not None:
            shown += f", dense_score={self.dense_score!r}, lexical_score={self.lexical_score!r}"
        return (
            f"Hit(id={self.id!r}, score={self.score!r}, metadata={self.metadata!r}, "
            f"text={self.text!r}{shown})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The hit as a plain dict (JSON-serialisable); ``relevance`` only when calibrated,
        ``dense_score`` and ``lexical_score`` only from a lexical or hybrid search (a lexical
        one's ``dense_score`` is ``None``: it embeds nothing)."""
        out = {"id": self.id, "score": self.score, "metadata": self.metadata, "text": self.text}
        if self.relevance is not None:
            out["relevance"] = self.relevance
        if self.lexical_score is not None:
            out["dense_score"] = self.dense_score
            out["lexical_score"] = self.lexical_score
        return out


_SET_ID, _SET_SCORE, _SET_TEXT, _SET_EXTRA, _SET_META = (
    Hit.__dict__[name].__set__ for name in ("id", "score", "text", "_extra", "_meta")
)


def _hit(
    cls: type[Hit],
    id: str,
    score: float,
    metadata: JSONObject,
    text: str | None,
    relevance: float | None,
    dense_score: float | None,
    lexical_score: float | None,
) -> Hit:
    """A hit of class ``cls`` from its parts, as :meth:`Hit.__reduce__` gives them."""
    return cls(
        id, score, metadata, text, relevance, dense_score=dense_score, lexical_score=lexical_score
    )


#: ``row -> (id, text, metadata_json)`` of the items a search returned.
Described: TypeAlias = dict[int, tuple[str, str | None, str]]


class Results:
    """The answer to a search: one row of hits per query, best first.

    A row holds fewer than ``k`` hits only when fewer than ``k`` items exist or
    match the filter. ``ids`` and ``scores`` give the same rows as padded
    ``(n_queries, k)`` arrays: missing places hold ``None`` and ``-inf``. A
    collection's results make their :class:`Hit` objects only when rows are
    looked at, so ``ids`` and ``scores`` of a large batch stay cheap.

    >>> r = Results(k=2, rows=[[Hit("a", 0.9)], [Hit("b", 0.8), Hit("a", 0.1)]])
    >>> r.ids.tolist()
    [['a', None], ['b', 'a']]
    >>> r[1][0].id, len(r)
    ('b', 2)
    """

    __slots__ = ("_described", "_relevance", "_row_numbers", "_rows", "_scores", "_sides", "k")
    k: int
    _sides: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None
    _relevance: npt.NDArray[np.float64] | None
    _rows: list[list[Hit]] | None
    _scores: npt.NDArray[np.float32] | None
    _row_numbers: npt.NDArray[np.int64] | None
    _described: Described | None

    def __init__(self, k: int, rows: Sequence[Sequence[Hit]]) -> None:
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "_rows", [list(r) for r in rows])
        object.__setattr__(self, "_scores", None)
        object.__setattr__(self, "_row_numbers", None)
        object.__setattr__(self, "_described", None)
        object.__setattr__(self, "_relevance", None)
        object.__setattr__(self, "_sides", None)

    @classmethod
    def _from_search(
        cls,
        k: int,
        scores: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int64],
        described: Described,
        relevance: npt.NDArray[np.float64] | None = None,
        sides: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None,
    ) -> Results:
        """Results over a search's ``(n_queries, k)`` scores and store rows (``-1`` pads),
        with each hit's dense and lexical scores (``sides``) from a lexical or hybrid one."""
        # Each slot set once through its descriptor, without __init__ (see Hit._from_stored).
        out = object.__new__(cls)
        _SET_K(out, k)
        _SET_RESULTS_RELEVANCE(out, relevance)
        _SET_SIDES(out, sides)
        _SET_ROWS(out, None)
        _SET_SCORES(out, scores)
        _SET_ROW_NUMBERS(out, rows)
        _SET_DESCRIBED(out, described)
        return out

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Results are immutable; cannot set {name}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled and copied as results of the same hits (the slots refuse pickle's setattr).
        return (type(self), (self.k, self.rows))

    @property
    def rows(self) -> list[list[Hit]]:
        """Every query's hits, best first."""
        if self._rows is None:
            assert self._scores is not None
            assert self._row_numbers is not None
            described = self._described or {}
            stored = Hit._from_stored
            made: list[list[Hit]] = []
            sides = self._sides
            if self._relevance is None and sides is None:  # a plain search: the short loop
                for score_row, row_row in zip(
                    self._scores.tolist(), self._row_numbers.tolist(), strict=True
                ):
                    hits = []
                    for score, row in zip(score_row, row_row, strict=True):
                        if row < 0:
                            break
                        id_, text, meta = described[row]
                        hits.append(stored(id_, score, meta, text))
                    made.append(hits)
                _SET_ROWS(self, made)
                return made
            rel = (
                self._relevance.tolist()
                if self._relevance is not None
                else [[None] * self._scores.shape[1]] * len(self._scores)
            )
            for i, (score_row, row_row, rel_row) in enumerate(
                zip(self._scores.tolist(), self._row_numbers.tolist(), rel, strict=True)
            ):
                hits = []
                for j, (score, row, r) in enumerate(zip(score_row, row_row, rel_row, strict=True)):
                    if row < 0:
                        break
                    id_, text, meta = described[row]
                    both = None if sides is None else (sides[0][i, j], sides[1][i, j])
                    hits.append(stored(id_, score, meta, text, r, both))
                made.append(hits)
            _SET_ROWS(self, made)
            return made
        return self._rows

    def __len__(self) -> int:
        if self._row_numbers is not None:
            return len(self._row_numbers)
        return len(self.rows)

    def __getitem__(self, query_index: int) -> list[Hit]:
        return self.rows[query_index]

    def __iter__(self) -> Iterator[list[Hit]]:
        return iter(self.rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Results) and (self.k, self.rows) == (other.k, other.rows)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Results(k={self.k!r}, rows={self.rows!r})"

    @property
    def ids(self) -> npt.NDArray[np.object_]:
        """Hit ids, shape ``(n_queries, k)``, padded with ``None``."""
        if self._row_numbers is not None and self._rows is None:
            rows = self._row_numbers
            described = self._described or {}
            out = np.full((len(rows), max(self.k, rows.shape[1])), None, dtype=object)
            found = rows >= 0
            unique, inverse = np.unique(rows[found], return_inverse=True)
            names = np.array([described[r][0] for r in unique.tolist()] or [""], dtype=object)
            out[:, : rows.shape[1]][found] = names[inverse] if len(unique) else []
            return out
        out = np.full((len(self.rows), self.k), None, dtype=object)
        for i, row in enumerate(self.rows):
            for j, hit in enumerate(row):
                out[i, j] = hit.id
        return out

    @property
    def scores(self) -> npt.NDArray[np.float32]:
        """Hit scores, shape ``(n_queries, k)``, padded with ``-inf``."""
        if self._scores is not None and self._row_numbers is not None:
            # A search ranks at most as many hits as the collection holds; pad to k here.
            rows = self._row_numbers
            out = np.full((len(rows), max(self.k, rows.shape[1])), -np.inf, dtype=np.float32)
            out[:, : rows.shape[1]] = np.where(rows >= 0, self._scores, -np.inf)
            return out
        out = np.full((len(self.rows), self.k), -math.inf, dtype=np.float32)
        for i, row in enumerate(self.rows):
            for j, hit in enumerate(row):
                out[i, j] = hit.score
        return out

    def to_list(self) -> list[list[dict[str, Any]]]:
        """Every row as a list of plain dicts (JSON-serialisable)."""
        return [[hit.to_dict() for hit in row] for row in self.rows]

    @staticmethod
    def from_rows(k: int, rows: Sequence[Sequence[Hit]]) -> Results:
        """Build results from any sequence of rows."""
        return Results(k=k, rows=[list(r) for r in rows])


(
    _SET_K, _SET_RESULTS_RELEVANCE, _SET_SIDES, _SET_ROWS, _SET_SCORES, _SET_ROW_NUMBERS,
    _SET_DESCRIBED,
) = (
    Results.__dict__[name].__set__
    for name in ("k", "_relevance", "_sides", "_rows", "_scores", "_row_numbers", "_described")
)  # fmt: skip
