"""What recent hits hold (id, text, metadata), kept beside the index and current with it.

Describing a search's hits reads a page of the store per hit. The rows searches
return again and again are kept here, bounded, least recently used dropped first;
the index keeper drops a row whenever its catch-up applies a change to it, so an
entry always holds what the store holds at the index's sequence number.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from simsearch.types import Described

__all__ = ["DescribedRows"]

#: Rows kept.
CAPACITY = 50_000


class DescribedRows:
    """``row -> (id, text, metadata_json)`` of recent hits."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[int, tuple[str, str | None, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, rows: list[int]) -> tuple[Described, list[int]]:
        """Those of ``rows`` that are kept, and the rows that are not."""
        found: Described = {}
        missing: list[int] = []
        with self._lock:
            kept = self._rows
            for row in rows:
                hit = kept.get(row)
                if hit is None:
                    missing.append(row)
                else:
                    found[row] = hit
                    kept.move_to_end(row)
        return found, missing

    def keep(self, described: Described) -> None:
        with self._lock:
            self._rows.update(described)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)

    def forget(self, rows: Iterable[int]) -> None:
        with self._lock:
            if not self._rows:
                return  # a bulk load into a collection nobody searched yet
            for row in rows:
                self._rows.pop(row, None)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
