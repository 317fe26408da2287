"""MaxSim of query sets against packed stored sets, decoded a chunk at a time.

Reranking reads each candidate's packed set (:func:`simsearch.multivector.tokens.pack`)
and scores it against the query's vectors. The work is bound by memory traffic, not
arithmetic: a query of 20 vectors against 30,000 stored ones is 12 million decoded
numbers for 240 million multiply-adds. So the sets are decoded straight from their blobs
into one float32 buffer of :data:`CHUNK_VECTORS` rows that stays in the core's cache,
scored there by one matrix product per chunk, and reduced to each set's best match per
query vector before the next chunk overwrites the buffer: no joined copy of the blobs,
no array of every decoded vector. int8 codes are multiplied as they are, and each
vector's scale applied to its row of similarities afterwards (``q . (s c) = s (q . c)``),
which costs a query's width per vector instead of the vector's dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsearch.blas import serial_blas
from simsearch.types import FloatArray

__all__ = ["CHUNK_VECTORS", "maxsim_packed"]

#: Stored vectors decoded and scored at a time: 1,024 x 384 float32 is 1.5 MiB, inside a
#: core's L2 cache on the machines simsearch is measured on.
CHUNK_VECTORS = 1024
#: Scores one product of stored by query vectors holds at most (64 MiB of float32).
PRODUCT_CELLS = 1 << 24


def maxsim_packed(
    queries: list[FloatArray],
    blobs: Sequence[bytes],
    counts: Sequence[int],
    dim: int,
    storage: str,
) -> FloatArray:
    """MaxSim of each query set against each packed set, ``(len(queries), len(blobs))``.

    >>> from simsearch.multivector.tokens import pack
    >>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    >>> sets = [np.array([[1, 0], [0.5, 0.5]], np.float32), np.array([[0, 1]], np.float32)]
    >>> maxsim_packed(q, [pack(s, "float16") for s in sets], [2, 1], 2, "float16").tolist()
    [[1.5, 1.0]]
    """
    widths = [len(q) for q in queries]
    out = np.empty((len(blobs), sum(widths)), dtype=np.float32)
    if not len(blobs):
        return np.empty((len(queries), 0), dtype=np.float32)
    query_t = np.ascontiguousarray(np.concatenate(queries).T, dtype=np.float32)
    largest = max(counts)
    buffer = np.empty((max(CHUNK_VECTORS, largest), dim), dtype=np.float32)
    scales = np.empty(len(buffer), dtype=np.float32) if storage == "int8" else None
    start = 0
    with serial_blas():  # one product a chunk: the thread pool's wake-ups cost more
        while start < len(blobs):
            stop, filled = start, 0
            starts: list[int] = []
            while stop < len(blobs) and (stop == start or filled + counts[stop] <= len(buffer)):
                starts.append(filled)
                _decode(blobs[stop], counts[stop], dim, storage, buffer, scales, filled)
                filled += counts[stop]
                stop += 1
            # Query vectors a product at a time so that one holds at most PRODUCT_CELLS
            # scores (one stored set may hold 65,536 vectors); a search's few query
            # vectors make one product.
            step = max(1, PRODUCT_CELLS // filled)
            for a in range(0, query_t.shape[1], step):
                sims = buffer[:filled] @ query_t[:, a : a + step]
                if scales is not None:
                    sims *= scales[:filled, None]
                np.maximum.reduceat(sims, starts, axis=0, out=out[start:stop, a : a + step])
            start = stop
    firsts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    return np.ascontiguousarray(np.add.reduceat(out, firsts, axis=1).T, dtype=np.float32)


def _decode(
    blob: bytes,
    count: int,
    dim: int,
    storage: str,
    buffer: FloatArray,
    scales: FloatArray | None,
    at: int,
) -> None:
    """Write one packed set's ``count`` vectors into ``buffer`` from row ``at`` (int8:
    the codes, with their scales into ``scales``)."""
    target = buffer[at : at + count]
    if storage == "int8":
        assert scales is not None
        scales[at : at + count] = np.frombuffer(blob, dtype="<f4", count=count)
        codes = np.frombuffer(blob, dtype=np.int8, offset=4 * count)
        np.copyto(target, codes.reshape(count, dim))
        return
    dtype = "<f2" if storage == "float16" else "<f4"
    np.copyto(target, np.frombuffer(blob, dtype=dtype).reshape(count, dim))
