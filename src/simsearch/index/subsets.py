"""Exact search over the row sets searches repeat, without copying vectors per query.

A graph is searched exactly when it is small (below ``exact_below``) or when a filter
leaves few rows; hnswlib hands out vectors only by copying them one label at a time
(about 3 microseconds a row), which made each such search cost milliseconds. The
float vectors of a row set (every live row of a small graph, or the rows a filter
allows) are copied once into a flat index and reused until the index changes.

Memory stays bounded: the copies together hold at most ``BUDGET_SHARE`` of the
index's vectors (or ``MIN_BUDGET`` floats), least recently used dropped first, so
no second full copy of a large collection's vectors is ever made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from simsearch.index.base import Int64Array, VectorIndex
from simsearch.index.flat import FlatIndex

__all__ = ["BUDGET_SHARE", "SubsetCache"]

#: The copies hold at most this share of the index's vectors...
BUDGET_SHARE = 0.25
#: ...or this many floats, whichever is more (a small collection's rows fit whole).
MIN_BUDGET = 2_000_000


class SubsetCache:
    """Flat copies of row sets, each valid for one version of one index."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Hashable, int], FlatIndex] = OrderedDict()
        self._lock = threading.Lock()
        self._owner: VectorIndex | None = None

    def flat(
        self, index: VectorIndex, version: int, key: Hashable, rows_of: Callable[[], Int64Array]
    ) -> FlatIndex | None:
        """A flat index over the rows ``rows_of()`` names (asked only when no copy is kept)
        of ``index`` as of ``version``, or ``None`` when the index keeps no float vectors or
        the set does not fit the budget."""
        with self._lock:
            if self._owner is not index:
                self._entries.clear()
                self._owner = index
            found = self._entries.get((key, version))
            if found is not None:
                self._entries.move_to_end((key, version))
                return found
        rows = rows_of()
        budget = max(BUDGET_SHARE * len(index) * index.dim, MIN_BUDGET)
        if len(rows) * index.dim > budget:
            return None
        vectors = index.exact_vectors(rows)
        if vectors is None:
            return None
        flat = FlatIndex.from_arrays(index.metric, rows, vectors)
        with self._lock:
            if self._owner is not index:
                return flat
            for stale in [e for e in self._entries if e[1] != version]:
                del self._entries[stale]
            self._entries[(key, version)] = flat
            held = sum(len(f) for f in self._entries.values()) * index.dim
            while held > budget and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                held -= len(dropped) * index.dim
        return flat
