"""Remembers which rows a filter matched, and brings that up to date incrementally.

Evaluating a ``where`` filter scans every item's metadata in SQLite, which
costs far more than ranking a few thousand vectors. Searches repeat filters,
so each result is kept with the store sequence number it was computed at; at
a later sequence number only the rows written or deleted since are looked at
(through the store's sequence index), and a full scan happens only when much
has changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from simsearch.filters import SqlFilter
from simsearch.store.sqlite import Int64Array, ReadTxn

__all__ = ["FilterCache"]

#: Filters remembered per collection (least recently used ones are dropped).
MAX_FILTERS = 64
#: Above this share of changed rows a full scan is cheaper than patching.
FULL_SCAN_SHARE = 0.25


class FilterCache:
    """Allowed rows per filter, kept consistent with the store by sequence number."""

    def __init__(self, capacity: int = MAX_FILTERS) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[int, Int64Array]] = OrderedDict()
        self.full_scans = 0
        self.patches = 0

    def cached(self, flt: SqlFilter, seq: int) -> Int64Array | None:
        """The rows ``flt`` matched at ``seq``, when they are kept; else ``None``."""
        found = self._entries.get(flt.key)
        return found[1] if found is not None and found[0] == seq else None

    def rows(
        self,
        snap: ReadTxn,
        flt: SqlFilter,
        seq: int,
        total: int,
        indexed: Callable[[], Int64Array | None] | None = None,
    ) -> tuple[Int64Array, str]:
        """Rows matching ``flt`` in the snapshot ``snap`` at sequence number ``seq``, and
        where they came from (``cache``, ``payload index``, ``patched``, ``scan``).
        ``indexed`` answers from payload indexes, or returns ``None`` to leave it to SQL."""
        key = flt.key
        cached = self._entries.get(key)
        if cached is not None and cached[0] == seq:
            self._entries.move_to_end(key)
            return cached[1], "cache"
        found = indexed() if indexed is not None else None
        if found is not None:
            return self._store(key, seq, found), "payload index"
        rows: Int64Array
        if cached is not None and cached[0] < seq:
            written = snap.rows_written_since(cached[0])
            if len(written) <= FULL_SCAN_SHARE * max(total, 1):
                stale = np.union1d(written, snap.rows_deleted_since(cached[0]))
                kept = np.setdiff1d(cached[1], stale, assume_unique=True)
                rows = np.union1d(kept, snap.filter_rows(flt, since=cached[0]))
                self.patches += 1
                return self._store(key, seq, rows), "patched"
        rows = snap.filter_rows(flt)
        self.full_scans += 1
        return self._store(key, seq, rows), "scan"

    def _store(self, key: str, seq: int, rows: Int64Array) -> Int64Array:
        rows.setflags(write=False)  # shared between searches: never modified in place
        self._entries[key] = (seq, rows)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return rows

    def clear(self) -> None:
        self._entries.clear()
