"""The stages after the candidates: hubness reranking, relevance, and the relevance cuts.

Each stage takes the :class:`SearchContext` (what one search reads: its snapshot,
the pinned index, the allowed rows, the config) and a :class:`Ranked` and returns a
new :class:`Ranked`; none reaches back into the collection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from simsearch.config import CollectionConfig
from simsearch.index.base import Int64Array, VectorIndex
from simsearch.index.flat import normalize
from simsearch.scoring.calibration import WINDOW, Calibrator
from simsearch.scoring.hubness import HubnessTerms
from simsearch.search.candidates import ExactFlat, Ranked, candidates
from simsearch.search.request import Knobs
from simsearch.store.reads import ReadTxn
from simsearch.types import FloatArray, Metric

__all__ = ["HUBNESS_DEPTH", "SearchContext", "cut", "hubness_rerank", "with_relevance"]

#: A hubness-corrected search reorders this many candidates per hit.
HUBNESS_DEPTH = 4

F64 = npt.NDArray[np.float64]
#: ``terms(correction, rows)``: the per-item hubness terms of ascending ``rows``.
ItemTerms = Callable[[HubnessTerms, Int64Array], F64]


class SearchContext(NamedTuple):
    """What one search reads, fixed for its length (a named tuple: quick to make)."""

    snap: ReadTxn | None  # None on the quick path, which reads nothing from the store
    index: VectorIndex  # type: ignore[assignment]  # over tuple.index, unused
    config: CollectionConfig
    allowed: Int64Array | None
    knobs: Knobs
    exact: bool
    exact_flat: ExactFlat | None = None
    window: VectorIndex | None = None  # a window bucket holding every allowed row

    def candidates(self, queries: FloatArray, k: int, *, filtered: bool = True) -> Ranked:
        allowed = self.allowed if filtered else None
        return candidates(
            self.index,
            self.config,
            self.snap,
            queries,
            k,
            allowed,
            self.knobs,
            self.exact,
            self.exact_flat,
            self.window if filtered else None,
        )

    def space(self, queries: FloatArray) -> FloatArray:
        """Queries as the index compares them (unit length for cosine)."""
        return normalize(queries) if self.config.metric is Metric.COSINE else queries


def hubness_rerank(
    ctx: SearchContext, correction: HubnessTerms, terms: ItemTerms, queries: FloatArray, k: int
) -> Ranked:
    """The nearest ``HUBNESS_DEPTH x k`` candidates, reordered by the corrected score;
    hits keep their raw scores."""
    ranked = ctx.candidates(queries, HUBNESS_DEPTH * k)
    scores, rows = ranked.scores, ranked.rows
    valid = rows >= 0
    unique = np.unique(rows[valid])
    per_item = terms(correction, unique) if len(unique) else np.zeros(0)
    per_hit = np.zeros(rows.shape)
    if len(unique):
        per_hit[valid] = per_item[np.searchsorted(unique, rows[valid])]
    corrected = np.where(valid, correction.corrected(scores.astype(np.float64), per_hit), -np.inf)
    order = np.lexsort((np.where(valid, rows, np.iinfo(np.int64).max), -corrected), axis=-1)
    order = order[:, :k]
    out_rows = np.where(
        np.take_along_axis(valid, order, axis=1), np.take_along_axis(rows, order, axis=1), -1
    )
    return Ranked(np.take_along_axis(scores, order, axis=1), out_rows)


def with_relevance(
    ctx: SearchContext,
    calibrator: Calibrator,
    queries: FloatArray,
    k: int,
    ranked: Ranked | None,
    deep: bool,
) -> tuple[Ranked, F64]:
    """The hits (those already ``ranked``, or the ``k`` best) with each one's relevance
    against the query's unfiltered window, and the expected number of relevant items each
    query has among those searched (``deep``: down to the depth the calibration's judged
    relevant items reached, for queries with more relevant items than one window)."""
    filtered = ctx.allowed is not None
    if calibrator.kind == "fitted":
        depth = max(k, WINDOW, calibrator.depth if deep and not filtered else 0)
        wide = ctx.candidates(queries, depth, filtered=False)
        if ranked is None:
            if filtered:
                ranked = ctx.candidates(queries, k)
            else:
                ranked = Ranked(wide.scores[:, :k], wide.rows[:, :k])
        window = wide.scores[:, :WINDOW]
    else:
        if ranked is None:
            ranked = ctx.candidates(queries, k)
        window = ranked.scores
    space = ctx.space(queries)
    relevance = np.where(ranked.rows >= 0, calibrator.relevance(space, ranked.scores, window), 0.0)
    if not filtered and calibrator.kind == "fitted":
        reach = max(WINDOW, calibrator.depth if deep else 0)
        found = wide.rows[:, :reach] >= 0
        deep_scores = np.where(found, wide.scores[:, :reach], window[:, -1:])
        probs = calibrator.relevance(space, deep_scores, window)
        expected = np.where(found, probs, 0.0).sum(axis=1)
    else:  # a filtered search: the relevant items it can return are among its hits
        expected = relevance.sum(axis=1)
    out = Ranked(ranked.scores, ranked.rows, relevance)
    return out, np.maximum(expected, relevance.sum(axis=1))


def cut(
    ranked: Ranked, expected: F64, *, min_relevance: float | None, f1: Calibrator | None
) -> Ranked:
    """Keep the hits at least ``min_relevance`` relevant, and with ``f1`` those its
    ``cutoff="f1"`` rule keeps; gaps a non-score order (hubness) leaves are closed."""
    assert ranked.relevance is not None
    rows = ranked.rows
    if min_relevance is not None:
        rows = np.where(ranked.relevance >= min_relevance, rows, -1)
    if f1 is not None:
        scores = np.where(ranked.rows >= 0, ranked.scores.astype(np.float64), -np.inf)
        rows = np.where(f1.f1_keep(scores, ranked.relevance, expected), rows, -1)
    # Move each row's kept hits (rows >= 0) to the front, keeping their order.
    order = np.argsort(rows < 0, axis=1, kind="stable")
    return Ranked(
        np.take_along_axis(ranked.scores, order, axis=1),
        np.take_along_axis(rows, order, axis=1),
        np.take_along_axis(ranked.relevance, order, axis=1),
    )
