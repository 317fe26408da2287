"""The lexical and hybrid candidate stages: BM25 from the lexical index, and its fusion
with the dense candidates.

``lexical``: each query's best rows by BM25 (:mod:`simsearch.index.lexical`, caught
up to the search's snapshot), among the rows the filter allows. ``hybrid``: the best
``max(POOL, depth)`` rows of each side, united (:class:`Pool`); every candidate gets its exact dense
similarity and its BM25 score (0 where no query word is in its text), and they are
fused (:mod:`simsearch.scoring.fusion`) into the score it is ranked by. Both report
each hit's two side scores beside the one it is ranked by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.errors import InvalidArgumentError
from simsearch.index.base import Int64Array
from simsearch.index.bm25 import BM25Index, CorpusStats, best_of
from simsearch.index.flat import normalize
from simsearch.index.tokens import query_words
from simsearch.scoring.fusion import fuse
from simsearch.search.candidates import Ranked
from simsearch.search.request import SearchRequest
from simsearch.search.stages import SearchContext
from simsearch.store.reads import ReadTxn
from simsearch.types import FloatArray, Metric

__all__ = [
    "POOL", "Pool", "Sided", "Sides", "Terms", "allowed_mask", "check_texts", "hybrid_pool",
    "lexical_ranked", "lexical_sided", "matches_of", "skipped", "text_stage",
]  # fmt: skip

F32 = npt.NDArray[np.float32]
#: Candidates each side gives a hybrid search at least.
POOL = 100


@dataclass(frozen=True)
class Sided:
    """Ranked hits with each one's dense and lexical score beside the ranking score."""

    ranked: Ranked
    dense: F32
    lexical: F32


#: A query's term ids in the lexical index (``None``: it has no word to look for).
Terms = list[int] | None


def matches_of(bm25: BM25Index, texts: Sequence[str]) -> list[Terms]:
    """Each query text's terms."""
    found = [query_words(t) for t in texts]
    return [bm25.vocab.terms_of(words) if words else None for words in found]


def allowed_mask(allowed: Int64Array | None) -> npt.NDArray[np.bool_] | None:
    """``allowed`` (ascending rows) as a mask over rows."""
    if allowed is None:
        return None
    mask = np.zeros(int(allowed[-1]) + 1 if len(allowed) else 0, dtype=bool)
    mask[allowed] = True
    return mask


def _padded(
    parts: list[tuple[npt.NDArray[np.float64], Int64Array]], width: int
) -> tuple[F32, Int64Array]:
    scores = np.full((len(parts), width), -np.inf, dtype=np.float32)
    rows = np.full((len(parts), width), -1, dtype=np.int64)
    for i, (s, r) in enumerate(parts):
        scores[i, : len(r)] = s[:width]
        rows[i, : len(r)] = r[:width]
    return scores, rows


def lexical_ranked(
    bm25: BM25Index,
    matches: Sequence[Terms],
    k: int,
    allowed: Int64Array | None,
    stats: CorpusStats | None = None,
) -> Ranked:
    """The ``k`` best rows of each query by BM25 among ``allowed`` (``None``: all), under
    ``stats`` when given (a sharded collection's sums), else the index's own."""
    empty = (np.zeros(0, np.float64), np.zeros(0, np.int64))
    mask = allowed_mask(allowed)
    parts = [empty if not m else bm25.search(m, k, mask, stats) for m in matches]
    return Ranked(*_padded(parts, k))


def dense_scores(ctx: SearchContext, snap: ReadTxn, queries: FloatArray, rows: Int64Array) -> F32:
    """The similarity of each query to each of its ``rows`` (``(n, m)``, -1 pads)."""
    dim = int(ctx.config.dim or 0)
    wanted = np.unique(rows[rows >= 0])
    out = np.full(rows.shape, -np.inf, dtype=np.float32)
    if not len(wanted):
        return out
    vectors = snap.vectors_of_rows(wanted, dim)
    q = queries
    if ctx.config.metric is Metric.COSINE:
        q, vectors = normalize(queries), normalize(vectors)
    if ctx.config.metric is Metric.L2:
        diff = q[:, None, :] - vectors[None, :, :]
        table = -np.sqrt((diff * diff).sum(axis=2))
    else:
        table = q @ vectors.T
    found = rows >= 0
    at = np.searchsorted(wanted, np.where(found, rows, wanted[0]))
    picked = np.take_along_axis(table, at, axis=1)
    return np.where(found, picked, -np.inf).astype(np.float32)


def _rank_in(rows: Int64Array, side: Int64Array) -> npt.NDArray[np.int64]:
    """Each of ``rows``'s 0-based rank in ``side`` (one query's list), -1 when absent."""
    place = {int(r): i for i, r in enumerate(side.tolist()) if r >= 0}
    return np.array([place.get(int(r), -1) for r in rows.tolist()], dtype=np.int64)


@dataclass(frozen=True)
class Pool:
    """Each query's hybrid candidates (``(n, m)``, -1 pads) with both sides' scores and
    their 0-based ranks in each side's own list (-1: not in it)."""

    rows: Int64Array
    dense: F32
    lexical: F32
    dense_rank: Int64Array
    lexical_rank: Int64Array

    def ranked(self, fusion: str, alpha: float, k: int) -> Sided:
        """The ``k`` best candidates by fused score."""
        valid = self.rows >= 0
        fused = fuse(
            self.dense, self.lexical, self.dense_rank, self.lexical_rank, valid, fusion, alpha
        )
        # Best fused first; ties by the smaller row, so equal scores order the same every time.
        order = np.lexsort((np.where(valid, self.rows, np.iinfo(np.int64).max), -fused))
        order = order[:, :k]

        def pick(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
            return np.take_along_axis(a, order, axis=1)

        rows = np.where(pick(valid), pick(self.rows), -1)
        return Sided(Ranked(pick(fused), rows), pick(self.dense), pick(self.lexical))


def hybrid_pool(
    ctx: SearchContext,
    snap: ReadTxn,
    bm25: BM25Index,
    queries: FloatArray,
    matches: Sequence[Terms],
    depth: int,
    stats: CorpusStats | None = None,
) -> Pool:
    """The union of each side's best ``depth`` rows per query, every one scored by both
    (BM25 under ``stats`` when given)."""
    dense_side = ctx.candidates(queries, depth)
    n = len(queries)
    # Each query's matches are read once: the best ``depth`` of them are its lexical side,
    # and the dense side's candidates take their BM25 scores from them too.
    empty = (np.zeros(0, np.float64), np.zeros(0, np.int64))
    mask = allowed_mask(ctx.allowed)
    matched = [empty if not m else bm25.matches(m, mask, stats) for m in matches]
    lexical_side = [best_of(s, r, depth)[1] for s, r in matched]
    unions = []
    for i in range(n):
        both = np.concatenate([dense_side.rows[i], lexical_side[i]])
        unions.append(np.unique(both[both >= 0]))
    width = max(1, max(len(u) for u in unions))
    rows = np.full((n, width), -1, dtype=np.int64)
    dense_rank = np.full((n, width), -1, dtype=np.int64)
    lexical_rank = np.full((n, width), -1, dtype=np.int64)
    lexical = np.zeros((n, width), dtype=np.float32)
    for i, u in enumerate(unions):
        rows[i, : len(u)] = u
        dense_rank[i, : len(u)] = _rank_in(u, dense_side.rows[i])
        lexical_rank[i, : len(u)] = _rank_in(u, lexical_side[i])
        scores, found = matched[i]
        if len(found):
            at = np.minimum(np.searchsorted(found, u), len(found) - 1)
            lexical[i, : len(u)] = np.where(found[at] == u, scores[at], 0.0)
    dense = dense_scores(ctx, snap, queries, rows)
    return Pool(rows, dense, lexical, dense_rank, lexical_rank)


#: Each hit's dense and lexical scores, as ``Results`` carries them.
Sides = tuple[F32, F32]


def text_stage(
    ctx: SearchContext,
    snap: ReadTxn,
    bm25: BM25Index,
    request: SearchRequest,
    texts: Sequence[str],
    queries: FloatArray,
    k: int,
    alpha: float,
) -> Sided:
    """The lexical or hybrid candidates ``request.mode`` asks for, ``k`` deep, after the
    ``offset`` best (a lexical search leaves the dense scores NaN: it embeds nothing)."""
    matches = matches_of(bm25, texts)
    if request.mode == "lexical":
        sided = lexical_sided(bm25, matches, k, ctx.allowed)
    else:
        pool = hybrid_pool(ctx, snap, bm25, queries, matches, max(POOL, k))
        sided = pool.ranked(request.fusion, alpha, k)
    check_texts(bm25, matches, request.mode)
    return skipped(sided, request.offset)


def lexical_sided(
    bm25: BM25Index,
    matches: Sequence[Terms],
    k: int,
    allowed: Int64Array | None,
    stats: CorpusStats | None = None,
) -> Sided:
    """A lexical search's hits, its dense scores NaN (it embeds nothing)."""
    ranked = lexical_ranked(bm25, matches, k, allowed, stats)
    return Sided(
        ranked,
        np.full(ranked.rows.shape, np.nan, dtype=np.float32),
        np.where(ranked.rows >= 0, ranked.scores, 0.0).astype(np.float32),
    )


def check_texts(bm25: BM25Index, matches: Sequence[Terms], mode: str) -> None:
    """Refuse a text search of a collection that holds no texts."""
    if not bm25.live and any(m is not None for m in matches):
        raise InvalidArgumentError(
            f"mode={mode!r} ranks items by their texts, and this collection holds "
            "none (only vectors): search with mode='dense'"
        )


def skipped(sided: Sided, skip: int) -> Sided:
    """``sided`` without its ``skip`` best hits (a page's offset)."""
    if not skip:
        return sided
    r = sided.ranked
    return Sided(
        Ranked(r.scores[:, skip:], r.rows[:, skip:]), sided.dense[:, skip:], sided.lexical[:, skip:]
    )
