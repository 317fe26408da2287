"""The late-interaction stage of a multi-vector collection: FDE candidates -> exact MaxSim
over the stored token vectors of the candidates -> :class:`~simsearch.search.candidates.Ranked`.

The candidate stage is the ordinary one over the items' fixed-dimensional encodings
(:mod:`simsearch.multivector.fde`), with the filter applied before ranking; its best
``candidates`` rows per query are then scored by exact MaxSim (Chamfer similarity) of
the query's set against each row's stored set, and the best ``k`` kept. Scores are
exact MaxSim. ``exact=True`` scores every allowed row by MaxSim instead (the oracle).
"""

from __future__ import annotations

import numpy as np

from simsearch.blas import serial_blas
from simsearch.errors import InvalidArgumentError
from simsearch.index.base import Int64Array
from simsearch.index.rescore import merge_top_k
from simsearch.multivector.fde import MultiVector, fde_encoder
from simsearch.multivector.scoring import maxsim_packed
from simsearch.search.candidates import Ranked
from simsearch.search.request import SearchRequest
from simsearch.search.stages import SearchContext
from simsearch.store.reads import ReadTxn
from simsearch.types import FloatArray

__all__ = ["DEFAULT_CANDIDATES", "check_late_request", "late_rank", "maxsim_of_rows"]

#: Candidates per query that MaxSim reranks when ``search(candidates=...)`` is not given:
#: on SciFact with the default encoding, 100 FDE candidates recover the nDCG@10 of exact
#: MaxSim over every item to within 0.005 (``bench/bench_multivector.py``).
DEFAULT_CANDIDATES = 100
#: Query vectors x document vectors scored at once by an exact search (bounds its memory).
_EXACT_CELLS = 1 << 25


def check_late_request(request: SearchRequest) -> None:
    """Refuse what a MaxSim ranking cannot give: lexical or hybrid modes, hubness
    reduction and calibrated relevance (fitted on single-vector scores)."""
    if request.mode != "dense":
        raise InvalidArgumentError(
            f"mode={request.mode!r} is for collections of one vector per item; a "
            "multi-vector collection ranks by MaxSim"
        )
    if request.hubness.method != "none" or request.wants_relevance:
        raise InvalidArgumentError(
            "hubness, min_relevance and cutoff are for collections of one vector per item; "
            "a multi-vector collection ranks by MaxSim"
        )


def maxsim_of_rows(
    snap: ReadTxn, multi: MultiVector, queries: list[FloatArray], rows: Int64Array
) -> FloatArray:
    """MaxSim of each query set against the stored set of each of ``rows`` (ascending)."""
    assert multi.dim is not None
    counts, blobs = snap.token_blobs(rows)
    return maxsim_packed(queries, blobs, counts, multi.dim, multi.storage)


def _best(scores: FloatArray, rows: Int64Array, k: int) -> tuple[FloatArray, Int64Array]:
    """The ``k`` best of one query's scored rows, ties by row; padded with -1 rows."""
    order = np.lexsort((rows, -scores))[:k]
    out_s = np.full(k, -np.inf, dtype=np.float32)
    out_r = np.full(k, -1, dtype=np.int64)
    out_s[: len(order)] = scores[order]
    out_r[: len(order)] = rows[order]
    return out_s, out_r


def late_rank(
    ctx: SearchContext,
    snap: ReadTxn,
    multi: MultiVector,
    queries: list[FloatArray],
    k: int,
    candidates: int | None,
    exact: bool,
) -> Ranked:
    """Each query set's ``k`` best rows by MaxSim: reranked from ``candidates`` FDE
    candidates (at least ``k``), or, with ``exact``, over every allowed row."""
    assert multi.dim is not None
    index = ctx.index
    if exact:
        rows = index.live_rows() if ctx.allowed is None else index.keep_live(ctx.allowed)
        return _exact(snap, multi, queries, np.sort(rows), k)
    depth = min(max(k, candidates or DEFAULT_CANDIDATES), len(index))
    with serial_blas():  # a few query sets: products far too small to repay BLAS's threads
        encoded = fde_encoder(multi, multi.dim).queries(queries)
    found = ctx.candidates(encoded, depth)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        rows = np.sort(found.rows[i][found.rows[i] >= 0])
        if len(rows):
            scores[i], out[i] = _best(maxsim_of_rows(snap, multi, [query], rows)[0], rows, k)
    return Ranked(scores, out)


def _exact(
    snap: ReadTxn, multi: MultiVector, queries: list[FloatArray], rows: Int64Array, k: int
) -> Ranked:
    """MaxSim of every query against every one of ``rows``, a block of rows at a time."""
    query_vectors = sum(len(q) for q in queries)
    counts, _ = snap.token_counts(rows)
    best_s = [np.full((len(queries), k), -np.inf, dtype=np.float32)]
    best_r = [np.full((len(queries), k), -1, dtype=np.int64)]
    start = 0
    while start < len(rows):
        stop, cells = start, 0
        while stop < len(rows) and (
            stop == start or cells + counts[stop] * query_vectors <= _EXACT_CELLS
        ):
            cells += counts[stop] * query_vectors
            stop += 1
        part = rows[start:stop]
        scores = maxsim_of_rows(snap, multi, queries, part)
        block = [_best(scores[i], part, k) for i in range(len(queries))]
        best_s.append(np.stack([s for s, _ in block]))
        best_r.append(np.stack([r for _, r in block]))
        start = stop
    return Ranked(*merge_top_k(np.hstack(best_s), np.hstack(best_r), k))
