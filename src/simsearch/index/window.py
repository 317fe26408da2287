"""Window filters: graphs over overlapping value ranges of one numeric field.

A range filter on a numeric field (``{"price": {"$gte": 10, "$lt": 20}}``, a *window*)
that keeps a mid-sized share of a large collection is the case neither plain path
serves well: exact search scores every allowed row, and the filtered walk of the whole
graph widens its beam by the excluded share. For a field declared
``index_field(field, kind, window=True)`` simsearch also keeps the *optimized
postfiltering* structure of Engels et al. (ICML 2024, "Approximate nearest neighbor
search with window filters", arXiv 2402.00943): the items sorted by the field's value,
cut into buckets of ``n / SPLIT``, ``n / SPLIT**2``, ... items down to ``LEAF``, the
buckets of a level overlapping by half (each starts ``SHIFT`` of a bucket after the
last), and an HNSW graph over each bucket. A window is searched in the smallest bucket
whose value range holds it, with the filter applied there as in the whole graph's
filtered walk; since the bucket holds every item of the window, and the window holds
at least ``(1 - SHIFT) / SPLIT`` of the bucket when it fits the level below it not, the
beam widens by at most ``SPLIT / (1 - SHIFT)`` (8) instead of by the collection's
excluded share. Memory: each level holds every item about twice (its buckets overlap
by half): about ``2 * levels`` times the main graph (reported by ``info()``).

A bucket's membership is by value (every item whose value lies in the bucket's closed
range, the outer buckets of each level open-ended), so items written later join the
buckets their value falls in, and a changed value moves its item. The graphs are kept
current by the same stream of changes as the main graph (see ``IndexKeeper``), built
on first use in a process (or by ``index_field`` and ``optimize``), and never saved:
they are derived from the store like every index. The planner uses a bucket only where
its cost model says the walk there costs less than exact search and the whole graph's
walk (see :func:`simsearch.search.plan.plan_search`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simsearch.config import HNSW, FieldIndexSpec
from simsearch.filters import FilterLeaf, FilterTree
from simsearch.index.base import Int64Array
from simsearch.index.hnsw import HNSWIndex
from simsearch.store import Changes
from simsearch.types import FloatArray, Metric

__all__ = ["LEAF", "SHIFT", "SPLIT", "Bucket", "WindowIndex", "window_of"]

F64 = npt.NDArray[np.float64]

#: Each level's buckets hold ``1 / SPLIT`` of the level above's items...
SPLIT = 4
#: ...and start ``SHIFT`` of a bucket apart, so neighbouring buckets overlap by half.
SHIFT = 0.5
#: No bucket smaller than this is built: exact search over the allowed rows of a window
#: that small costs less than any walk.
LEAF = 4096
#: Buckets are built with at most this ``ef_construction``: a bucket's graph is a small
#: one, and building them all costs several times the main graph.
BUCKET_EF_CONSTRUCTION = 100

_BOUNDS = {"gt": 0, "gte": 0, "lt": 1, "lte": 1}


def window_of(tree: FilterTree, keys: tuple[str, ...]) -> tuple[float, float] | None:
    """The value range ``[lo, hi]`` that every item passing ``tree`` has in the field
    ``keys`` (``-inf``/``inf`` for an open side), when ``tree`` bounds it; else ``None``.

    >>> from simsearch.filters import compile_filter
    >>> window_of(compile_filter({"x": {"$gte": 0.2, "$lt": 0.3}}).tree, ("x",))
    (0.2, 0.3)
    >>> window_of(compile_filter({"x": {"$gt": 1}, "tag": "a"}).tree, ("x",))
    (1.0, inf)
    >>> window_of(compile_filter({"$or": [{"x": 1}, {"x": 2}]}).tree, ("x",)) is None
    True
    """
    lo, hi, bounded = -math.inf, math.inf, False
    for leaf in _conjuncts(tree):
        if leaf.keys != keys or leaf.op not in _BOUNDS:
            continue
        value = leaf.operand
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        bounded = True
        if _BOUNDS[leaf.op] == 0:
            lo = max(lo, float(value))
        else:
            hi = min(hi, float(value))
    return (lo, hi) if bounded else None


def _conjuncts(tree: FilterTree) -> list[FilterLeaf]:
    """The comparisons that ``tree`` requires all of (through nested ``and``)."""
    if isinstance(tree, FilterLeaf):
        return [tree]
    if tree.op != "and":
        return []
    return [leaf for part in tree.parts for leaf in _conjuncts(part)]


@dataclass
class Bucket:
    """The items whose value lies in ``[lo, hi]``, and their graph."""

    lo: float
    hi: float
    graph: HNSWIndex

    def holds(self, lo: float, hi: float) -> bool:
        return self.lo <= lo and hi <= self.hi


class WindowIndex:
    """The bucket graphs of one window field (used under the index keeper's lock)."""

    def __init__(self, spec: FieldIndexSpec, metric: Metric, dim: int, config: HNSW) -> None:
        self.spec = spec
        self.metric = metric
        self.dim = dim
        self.config = HNSW(
            m=config.m,
            ef_construction=min(config.ef_construction, BUCKET_EF_CONSTRUCTION),
            ef_search=config.ef_search,
        )
        self.buckets: list[Bucket] = []  # smallest first, so the first that holds wins

    @classmethod
    def built(
        cls,
        spec: FieldIndexSpec,
        metric: Metric,
        config: HNSW,
        rows: Int64Array,
        vectors: FloatArray,
        values: F64,
    ) -> WindowIndex:
        """The buckets of ``rows`` (live, with ``vectors`` as the main graph holds them and
        the field's ``values``, NaN where an item has no number there)."""
        index = cls(spec, metric, vectors.shape[1], config)
        has = ~np.isnan(values)
        rows, vectors, values = rows[has], vectors[has], values[has]
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        n = len(rows)
        size = n // SPLIT
        levels: list[list[Bucket]] = []
        while size >= LEAF:
            step = max(1, int(size * SHIFT))
            level = []
            starts = list(range(0, max(n - size, 0) + 1, step))
            if starts[-1] + size < n:
                starts.append(n - size)
            for i, start in enumerate(starts):
                lo = -math.inf if i == 0 else float(ordered[start])
                hi = math.inf if i == len(starts) - 1 else float(ordered[start + size - 1])
                inside = (values >= lo) & (values <= hi)
                graph = HNSWIndex.built_from(
                    metric, index.dim, index.config, rows[inside], vectors[inside]
                )
                level.append(Bucket(lo, hi, graph))
            levels.append(level)
            size //= SPLIT
        index.buckets = [b for level in reversed(levels) for b in level]
        return index

    def apply(self, changes: Changes, values: F64) -> None:
        """Follow one batch of the store's changes (``values``: the field's value of each
        written row, NaN where it has none). ``changes.vectors`` are the store's, as the
        main graph receives them."""
        for bucket in self.buckets:
            graph = bucket.graph
            inside = (values >= bucket.lo) & (values <= bucket.hi)
            written = changes.rows
            # A written row held here whose value has left the range leaves the bucket.
            left = graph.keep_live(written[~inside])
            gone = np.concatenate([changes.deleted, left]).astype(np.int64)
            graph.apply(
                Changes(
                    seq=changes.seq,
                    rows=written[inside],
                    vectors=changes.vectors[inside],
                    deleted=gone,
                )
            )

    def pick(self, lo: float, hi: float) -> Bucket | None:
        """The smallest bucket whose range holds ``[lo, hi]``, if any."""
        for bucket in self.buckets:
            if bucket.holds(lo, hi):
                return bucket
        return None

    def nbytes(self) -> int:
        """About what the graphs take: vectors, links of ``2 m`` (layer 0) and labels."""
        per_item = 4 * self.dim + 4 * 2 * self.config.m + 8 + 8
        return sum(len(b.graph) * per_item for b in self.buckets)

    def __len__(self) -> int:
        return len(self.buckets)
