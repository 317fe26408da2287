"""Sets of token vectors: checked at the boundary, packed for the store, scored by MaxSim.

A set is stored as one blob beside its item (``float16``: 2 bytes a dimension;
``int8``: 1 byte a dimension plus a float32 scale per vector, symmetric, the vector's
largest magnitude over 127; ``float32``). MaxSim of a query set ``Q`` and a stored set
``P`` is ``sum over q in Q of max over p in P of <q, p>`` (the Chamfer similarity).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.errors import DimensionMismatchError, InvalidArgumentError, InvalidVectorError
from simsearch.index.flat import normalize
from simsearch.types import FloatArray
from simsearch.validation import as_vector_batch

__all__ = [
    "MAX_QUERY_SET",
    "MAX_SET",
    "as_query_sets",
    "as_token_sets",
    "maxsim",
    "pack",
    "unpack",
]

#: The most vectors one set may hold.
MAX_SET = 65_536
#: The most vectors one query set may hold (a text query makes at most the encoder's 256
#: tokens): MaxSim compares each with every stored vector of every candidate.
MAX_QUERY_SET = 1_024


def _one_set(value: Any, what: str, dim: int | None) -> FloatArray:
    if isinstance(value, str | bytes):
        raise InvalidVectorError(
            f"{what} must be a 2-D array of numbers, not {type(value).__name__}"
        )
    try:
        arr = np.asarray(value)
    except ValueError:
        raise InvalidVectorError(
            f"{what} is ragged: its vectors must all have one length"
        ) from None
    if arr.dtype != object and arr.ndim in (1, 2) and arr.shape[0] == 0:
        raise InvalidVectorError(f"{what} is an empty set: give at least one vector")
    if arr.dtype != object and arr.ndim != 2:
        raise InvalidVectorError(
            f"{what} must be a 2-D array (one row per vector), got {arr.ndim}-D"
        )
    if arr.dtype != object and len(arr) > MAX_SET:
        raise InvalidVectorError(f"{what} holds {len(arr)} vectors; at most {MAX_SET}")
    return as_vector_batch(arr, dim, what=what)


def as_token_sets(multivectors: Any, n: int, dim: int | None) -> list[FloatArray]:
    """``multivectors`` as ``n`` float32 sets of ``dim``-d vectors (``None``: any one
    dimension), or raise a specific error.

    >>> [s.shape for s in as_token_sets([[[1, 0]], [[0, 1], [1, 1]]], 2, 2)]
    [(1, 2), (2, 2)]
    >>> as_token_sets([[]], 1, None)
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidVectorError: multivector 0 is an empty set: give at least one vector
    """
    if isinstance(multivectors, str | bytes | dict) or not isinstance(
        multivectors, Sequence | np.ndarray
    ):
        raise InvalidVectorError(
            "multivectors must be a list of 2-D arrays (one set of vectors per id), not "
            f"{type(multivectors).__name__}"
        )
    if isinstance(multivectors, np.ndarray) and multivectors.ndim != 3:
        raise InvalidVectorError(
            f"multivectors as one array must be 3-D (items, vectors, dim), got "
            f"{multivectors.ndim}-D"
        )
    if len(multivectors) != n:
        raise InvalidArgumentError(f"got {n} ids but {len(multivectors)} multivectors")
    sets = [_one_set(value, f"multivector {i}", dim) for i, value in enumerate(multivectors)]
    dims = {s.shape[1] for s in sets}
    if len(dims) > 1:
        first = sets[0].shape[1]
        odd = next(i for i, s in enumerate(sets) if s.shape[1] != first)
        raise DimensionMismatchError(
            f"multivector {odd} holds {sets[odd].shape[1]}-d vectors, multivector 0 "
            f"{first}-d ones: every vector of a batch has one dimension"
        )
    return sets


def as_query_sets(query: Any, dim: int | None) -> list[FloatArray]:
    """A multi-vector query as a list of sets: one 2-D array (one set), a 3-D array or a
    list of 2-D arrays (a batch), or one vector (a set of one)."""
    if isinstance(query, str | bytes | dict):
        raise InvalidVectorError(f"query must be numbers or text, not {type(query).__name__}")
    try:
        arr = np.asarray(query)
        uniform = arr.dtype != object
    except ValueError:  # sets of different sizes
        uniform = False
    if uniform and arr.ndim == 1:
        return [_one_set(arr[np.newaxis, :], "query vectors", dim)]
    if uniform and arr.ndim == 2:
        return _capped([_one_set(arr, "query vectors", dim)])
    if uniform and arr.ndim not in (0, 3):
        raise InvalidVectorError(
            f"a multi-vector query is a 2-D array (one set) or a list of them, got {arr.ndim}-D"
        )
    if not isinstance(query, Sequence | np.ndarray) or not len(query):
        raise InvalidVectorError("a multi-vector query is a 2-D array (one set) or a list of them")
    return _capped([_one_set(q, f"query set {i}", dim) for i, q in enumerate(query)])


def _capped(sets: list[FloatArray]) -> list[FloatArray]:
    for i, one in enumerate(sets):
        if len(one) > MAX_QUERY_SET:
            raise InvalidVectorError(
                f"query set {i} holds {len(one)} vectors; a query set holds at most {MAX_QUERY_SET}"
            )
    return sets


def prepare(sets: list[FloatArray], cosine: bool) -> list[FloatArray]:
    """The sets as MaxSim compares them: each vector at unit length for cosine."""
    return [normalize(s) for s in sets] if cosine else sets


def pack(vectors: FloatArray, storage: str) -> bytes:
    """One set as a blob in the collection's ``storage``."""
    if storage == "float16":
        return bytes(vectors.astype("<f2").tobytes())
    if storage == "float32":
        return bytes(vectors.astype("<f4").tobytes())
    peak = np.abs(vectors).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype("<f4")
    codes = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    return bytes(scale.tobytes()) + bytes(codes.tobytes())


def unpack(blob: bytes, count: int, dim: int, storage: str) -> FloatArray:
    """The float32 ``(count, dim)`` set a blob holds."""
    if storage == "float16":
        return np.frombuffer(blob, dtype="<f2").reshape(count, dim).astype(np.float32)
    if storage == "float32":
        return np.frombuffer(blob, dtype="<f4").reshape(count, dim).astype(np.float32)
    scale = np.frombuffer(blob, dtype="<f4", count=count)
    codes = np.frombuffer(blob, dtype=np.int8, offset=4 * count).reshape(count, dim)
    out: FloatArray = codes.astype(np.float32) * scale[:, None]
    return out


def blob_size(count: int, dim: int, storage: str) -> int:
    """How many bytes a set of ``count`` vectors takes in ``storage``."""
    per = {"float16": 2 * dim, "float32": 4 * dim, "int8": dim + 4}[storage]
    return count * per


def maxsim(queries: list[FloatArray], docs: FloatArray, starts: np.ndarray) -> FloatArray:
    """MaxSim of each query set against each document set, ``(len(queries), len(starts))``
    float32: the documents' vectors are ``docs`` stacked, document ``j`` from ``starts[j]``
    to the next start.

    >>> q = [np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    >>> d = np.array([[1, 0], [0.5, 0.5], [0, 1]], np.float32)
    >>> maxsim(q, d, np.array([0, 2])).tolist()
    [[1.5, 1.0]]
    """
    if not len(starts):
        return np.empty((len(queries), 0), dtype=np.float32)
    # (every document vector, every query vector): the long side first runs faster.
    sims = docs @ np.concatenate(queries).T
    best = np.maximum.reduceat(sims, starts, axis=0)  # each document's best per query vector
    first = np.concatenate([[0], np.cumsum([len(q) for q in queries])[:-1]]).astype(np.int64)
    return np.ascontiguousarray(np.add.reduceat(best, first, axis=1).T, dtype=np.float32)
