"""The candidate stage: each query's nearest rows from the index, exact where the plan says.

An approximate index answers when the plan allows (:mod:`simsearch.search.plan`);
a quantized one's candidates are rescored with the store's float vectors, so
every score a caller sees is exact. Exact search reads the index's own float
vectors, or, for an index of codes, the store's a block at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simsearch.config import CollectionConfig
from simsearch.index.base import Int64Array, VectorIndex
from simsearch.index.flat import FlatIndex
from simsearch.index.quantized import QuantizedIndex
from simsearch.index.rescore import merge_top_k, rescore
from simsearch.search.plan import plan_search
from simsearch.search.request import Knobs
from simsearch.store.reads import ReadTxn
from simsearch.types import FloatArray

__all__ = ["EXACT_BLOCK", "Ranked", "candidates"]

#: Rows read from the store at a time by an exact search of a quantized index.
EXACT_BLOCK = 65_536


@dataclass(frozen=True)
class Ranked:
    """Each query's hits so far, best first: ``(n_queries, k)`` scores and store rows
    (``-1`` pads), and their relevance once a stage has given it."""

    scores: FloatArray
    rows: Int64Array
    relevance: np.ndarray | None = None


#: ``exact_flat(rows, filtered)``: a reusable flat copy of the rows ``rows()`` names (see
#: :mod:`simsearch.index.subsets`), or ``None``.
ExactFlat = Callable[[Callable[[], Int64Array], bool], FlatIndex | None]


def candidates(
    index: VectorIndex,
    config: CollectionConfig,
    snap: ReadTxn | None,
    queries: FloatArray,
    k: int,
    allowed: Int64Array | None,
    knobs: Knobs,
    exact: bool,
    exact_flat: ExactFlat | None = None,
    window: VectorIndex | None = None,
) -> Ranked:
    """The ``k`` best rows per query among ``allowed`` (every live row when ``None``);
    ``window``: a window bucket's graph that holds every allowed row, if one does."""
    if isinstance(index, FlatIndex):
        return Ranked(*index.search(queries, k, allowed))
    plan = plan_search(
        config.index,
        live=len(index),
        allowed=None if allowed is None else len(allowed),
        force_exact=exact,
        dim=index.dim,
        ef=knobs.ef,
        window=None if window is None or allowed is None else len(window),
        k=k,
    )
    dim = queries.shape[1]
    if not plan.exact:
        try:
            if isinstance(index, QuantizedIndex):
                assert snap is not None  # rescoring reads the store
                factor = knobs.rescore or index.config.rescore
                _, found = index.search(
                    queries, k * factor, allowed, ef=knobs.ef, nprobe=knobs.nprobe
                )
                return Ranked(
                    *rescore(
                        config.metric,
                        queries,
                        found,
                        k,
                        lambda rows: snap.vectors_of_rows(rows, dim),
                    )
                )
            walked = window if plan.window and window is not None else index
            return Ranked(*walked.search(queries, k, allowed, ef=knobs.ef))
        except RuntimeError:
            pass  # the walk found fewer than k items (a graph cut by deletions): go exact

    def rows_searched() -> Int64Array:
        return index.live_rows() if allowed is None else index.keep_live(allowed)

    copy = exact_flat(rows_searched, allowed is not None) if exact_flat is not None else None
    if copy is not None:
        return Ranked(*copy.search(queries, k))
    rows = rows_searched()
    vectors = index.exact_vectors(rows)
    if vectors is not None:
        return Ranked(*FlatIndex.from_arrays(config.metric, rows, vectors).search(queries, k))
    # An index of codes holds no floats: read them from the store a block at a time (the
    # collection may not fit in memory) and keep the best k of every block.
    assert snap is not None
    best_s: list[FloatArray] = [np.full((len(queries), k), -np.inf, dtype=np.float32)]
    best_r: list[Int64Array] = [np.full((len(queries), k), -1, dtype=np.int64)]
    for start in range(0, len(rows), EXACT_BLOCK):
        part = rows[start : start + EXACT_BLOCK]
        block = FlatIndex.from_arrays(config.metric, part, snap.vectors_of_rows(part, dim))
        scores, found = block.search(queries, k)
        best_s.append(scores)
        best_r.append(found)
    return Ranked(*merge_top_k(np.hstack(best_s), np.hstack(best_r), k))
