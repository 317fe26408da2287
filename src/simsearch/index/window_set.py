"""The window structures (:mod:`simsearch.index.window`) of one collection's declared
window fields, kept in step with its main graph by the index keeper."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simsearch.config import HNSW, CollectionConfig, FieldIndexSpec
from simsearch.filters import SqlFilter
from simsearch.index.base import Int64Array, VectorIndex
from simsearch.index.field_set import FieldIndexes
from simsearch.index.fields import NUMBER
from simsearch.index.hnsw import HNSWIndex
from simsearch.index.window import Bucket, WindowIndex, window_of
from simsearch.store import Changes

__all__ = ["WindowSet"]


def _numbers(
    fields: FieldIndexes, spec: FieldIndexSpec, rows: Int64Array
) -> npt.NDArray[np.float64]:
    """The field's numeric value of each of ``rows`` (NaN where it holds no number)."""
    out = np.full(len(rows), np.nan)
    column = fields.columns.get(spec.keys)
    if column is None:
        return out
    inside = rows < len(column.types)
    picked = rows[inside]
    values = np.where(column.types[picked] == NUMBER, column.numbers[picked], np.nan)
    out[inside] = values
    return out


def window_specs(config: CollectionConfig) -> tuple[FieldIndexSpec, ...]:
    """The declared window fields, where the index is a graph (a flat index is exact)."""
    if not isinstance(config.index, HNSW):
        return ()
    return tuple(s for s in config.fields if s.window)


class WindowSet:
    """Every window field's buckets (used under the index keeper's lock)."""

    def __init__(self) -> None:
        self.indexes: dict[FieldIndexSpec, WindowIndex] = {}

    def reset(self) -> None:
        self.indexes.clear()

    def ensure(self, config: CollectionConfig, index: VectorIndex, fields: FieldIndexes) -> None:
        """Build the buckets of declared window fields that have none (``fields`` caught up
        to the same sequence number as ``index``); forget undeclared ones."""
        specs = window_specs(config)
        for spec in [s for s in self.indexes if s not in specs]:
            del self.indexes[spec]
        missing = [s for s in specs if s not in self.indexes]
        if not missing or not isinstance(index, HNSWIndex) or not isinstance(config.index, HNSW):
            return
        rows, vectors = index.live_copy()
        for spec in missing:
            self.indexes[spec] = WindowIndex.built(
                spec, index.metric, config.index, rows, vectors, _numbers(fields, spec, rows)
            )

    def apply(self, changes: Changes, fields: FieldIndexes) -> None:
        """Follow one batch of changes (``fields`` already at the batch's sequence number)."""
        for spec, index in self.indexes.items():
            index.apply(changes, _numbers(fields, spec, changes.rows))

    def pick(self, flt: SqlFilter | None) -> Bucket | None:
        """The smallest bucket of any window field that holds every row ``flt`` allows."""
        if flt is None or not self.indexes:
            return None
        best = None
        for spec, index in self.indexes.items():
            window = window_of(flt.tree, spec.keys)
            bucket = None if window is None else index.pick(*window)
            if bucket is not None and (best is None or len(bucket.graph) < len(best.graph)):
                best = bucket
        return best

    def nbytes(self, spec: FieldIndexSpec) -> int | None:
        index = self.indexes.get(spec)
        return None if index is None else index.nbytes()
