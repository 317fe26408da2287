"""The protocol every vector index follows, and the registry that names them.

An index is derived data: it holds vectors keyed by the store's row numbers,
is brought up to date with :meth:`VectorIndex.apply` from the store's
:class:`~simsearch.store.Changes`, and answers top-k queries over all rows or
over an allowed subset. Scores are always higher-is-better.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.store import Changes
from simsearch.types import FloatArray, Metric

__all__ = ["Int64Array", "VectorIndex", "index_factory", "register_index"]

Int64Array = npt.NDArray[np.int64]


class VectorIndex(Protocol):
    """A searchable set of vectors keyed by store row number."""

    metric: Metric
    dim: int

    def __len__(self) -> int:
        """How many live vectors the index holds."""
        ...

    def apply(self, changes: Changes) -> None:
        """Add or replace the written rows and drop the deleted ones."""
        ...

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more rows at once (a catch-up knows how many come)."""
        ...

    def live_rows(self) -> Int64Array:
        """Every live row, ascending."""
        ...

    def keep_live(self, rows: Int64Array) -> Int64Array:
        """Those of ``rows`` (ascending) that are live, in order."""
        ...

    def exact_vectors(self, rows: Int64Array) -> FloatArray | None:
        """The float vectors of live ``rows`` as searched (normalised for cosine), or
        ``None`` when the index keeps only compressed codes."""
        ...

    def search(
        self,
        queries: FloatArray,
        k: int,
        allowed_rows: Int64Array | None = None,
        *,
        ef: int | None = None,
    ) -> tuple[FloatArray, Int64Array]:
        """Top-``k`` per query: ``(scores, rows)``, each ``(n_queries, k)``, best first.

        Places beyond the number of candidates hold score ``-inf`` and row ``-1``.
        ``allowed_rows`` (ascending) restricts the search to those rows; ``ef`` is
        the candidate list size of graph indexes.
        """
        ...


IndexFactory = Callable[[Metric, int], VectorIndex]
_REGISTRY: dict[str, IndexFactory] = {}


def register_index(name: str, factory: IndexFactory) -> None:
    """Make an index kind available under ``name``."""
    _REGISTRY[name] = factory


def index_factory(name: str) -> IndexFactory:
    """The factory registered under ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise InvalidArgumentError(
            f"unknown index kind {name!r}; valid kinds are: {valid}"
        ) from None
