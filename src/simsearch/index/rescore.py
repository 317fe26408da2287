"""Exact rescoring of an approximate index's candidates.

A quantized index ranks by its codes; its top ``k * rescore`` candidates are
scored again with the float vectors from the store and the best ``k`` kept, so
the scores a caller sees are exact and only the candidate set is approximate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simsearch.index.base import Int64Array
from simsearch.index.flat import normalize
from simsearch.types import FloatArray, Metric

__all__ = ["merge_top_k", "rescore"]

QUERY_CHUNK = 256


def rescore(
    metric: Metric,
    queries: FloatArray,
    candidates: Int64Array,
    k: int,
    fetch: Callable[[Int64Array], FloatArray],
) -> tuple[FloatArray, Int64Array]:
    """The exact top-``k`` among each query's ``candidates`` (rows; ``-1`` pads).

    ``fetch(rows)`` returns the float vectors of ascending ``rows``. Ties are
    broken by row, as in exact search.

    >>> vecs = {3: [1.0, 0.0], 5: [0.6, 0.8]}
    >>> fetch = lambda rows: np.array([vecs[r] for r in rows.tolist()], dtype=np.float32)
    >>> q = np.array([[0.0, 1.0]], dtype=np.float32)
    >>> s, r = rescore(Metric.DOT, q, np.array([[3, 5, -1]]), 2, fetch)
    >>> r.tolist(), [round(x, 2) for x in s[0].tolist()]
    ([[5, 3]], [0.8, 0.0])
    """
    nq = len(queries)
    scores = np.full((nq, k), -np.inf, dtype=np.float32)
    rows = np.full((nq, k), -1, dtype=np.int64)
    unique = np.unique(candidates[candidates >= 0])
    if not len(unique):
        return scores, rows
    vectors = fetch(unique)
    if metric is Metric.COSINE:
        vectors, queries = normalize(vectors), normalize(queries)
    for start in range(0, nq, QUERY_CHUNK):
        part = slice(start, min(start + QUERY_CHUNK, nq))
        cand = candidates[part]
        valid = cand >= 0
        gathered = vectors[np.searchsorted(unique, np.where(valid, cand, unique[0]))]
        q = queries[part][:, None, :]
        if metric is Metric.L2:
            s = -np.sqrt(np.einsum("qkd,qkd->qk", gathered - q, gathered - q))
        else:
            s = np.einsum("qkd,qkd->qk", np.broadcast_to(q, gathered.shape), gathered)
        scores[part], rows[part] = merge_top_k(s, np.where(valid, cand, -1), k)
    return scores, rows


def merge_top_k(scores: FloatArray, rows: Int64Array, k: int) -> tuple[FloatArray, Int64Array]:
    """The best ``k`` of each row of ``(scores, rows)`` (``-1`` rows pad), ties by row.

    >>> s, r = merge_top_k(np.array([[0.5, 0.75, 0.5]]), np.array([[7, 2, 3]]), 2)
    >>> r.tolist(), s.tolist()
    ([[2, 3]], [[0.75, 0.5]])
    """
    valid = rows >= 0
    s = np.where(valid, scores, -np.inf).astype(np.float32)
    tie = np.where(valid, rows, np.iinfo(np.int64).max)
    order = np.lexsort((tie, -s), axis=-1)[:, :k]
    out_s = np.full((len(rows), k), -np.inf, dtype=np.float32)
    out_r = np.full((len(rows), k), -1, dtype=np.int64)
    width = order.shape[1]
    out_s[:, :width] = np.take_along_axis(s, order, axis=1)
    out_r[:, :width] = np.where(
        np.take_along_axis(valid, order, axis=1), np.take_along_axis(rows, order, axis=1), -1
    )
    return out_s, out_r
