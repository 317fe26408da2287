"""Value types shared across simsearch: metrics, items and search results."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError

__all__ = ["FloatArray", "Hit", "Item", "JSONObject", "Metric", "Results"]

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


@dataclass(frozen=True)
class Item:
    """One stored item, as ``Collection.get`` returns it."""

    id: str
    vector: FloatArray = field(repr=False)
    text: str | None = None
    metadata: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result: the item's id, its score (higher is better) and what it holds."""

    id: str
    score: float
    metadata: JSONObject = field(default_factory=dict)
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The hit as a plain dict (JSON-serialisable)."""
        return {"id": self.id, "score": self.score, "metadata": self.metadata, "text": self.text}


@dataclass(frozen=True)
class Results:
    """The answer to a search: one row of hits per query, best first.

    A row holds fewer than ``k`` hits only when fewer than ``k`` items exist or
    match the filter. ``ids`` and ``scores`` give the same rows as padded
    ``(n_queries, k)`` arrays: missing places hold ``None`` and ``-inf``.

    >>> r = Results(k=2, rows=[[Hit("a", 0.9)], [Hit("b", 0.8), Hit("a", 0.1)]])
    >>> r.ids.tolist()
    [['a', None], ['b', 'a']]
    >>> r[1][0].id, len(r)
    ('b', 2)
    """

    k: int
    rows: list[list[Hit]]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, query_index: int) -> list[Hit]:
        return self.rows[query_index]

    def __iter__(self) -> Iterator[list[Hit]]:
        return iter(self.rows)

    @property
    def ids(self) -> npt.NDArray[np.object_]:
        """Hit ids, shape ``(n_queries, k)``, padded with ``None``."""
        out = np.full((len(self.rows), self.k), None, dtype=object)
        for i, row in enumerate(self.rows):
            for j, hit in enumerate(row):
                out[i, j] = hit.id
        return out

    @property
    def scores(self) -> npt.NDArray[np.float32]:
        """Hit scores, shape ``(n_queries, k)``, padded with ``-inf``."""
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
