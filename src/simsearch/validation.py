"""Checks on everything a user hands to a collection, done before anything is written.

Each check converts once at the boundary and raises a specific
:class:`~simsearch.errors.SimsearchError` subclass; none of them touches storage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.errors import (
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidTextError,
    InvalidVectorError,
)
from simsearch.types import FloatArray, JSONObject

__all__ = [
    "MAX_ID_LENGTH",
    "as_vector_batch",
    "check_ids",
    "check_k",
    "check_metadata",
    "check_texts",
    "metadata_to_json",
]

#: Ids are stored as SQLite TEXT and echoed in every result; keep them short enough to be keys.
MAX_ID_LENGTH = 1024


def as_vector_batch(vectors: Any, dim: int | None, *, what: str = "vectors") -> FloatArray:
    """Convert ``vectors`` to a C-contiguous float32 ``(n, dim)`` array, or raise.

    A single 1-D vector becomes a batch of one. ``dim=None`` accepts any
    positive dimension.

    >>> as_vector_batch([1, 2, 3], 3).shape
    (1, 3)
    >>> as_vector_batch([[1.0, float("nan")]], 2)
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidVectorError: vectors hold NaN or infinite values (row 0)
    """
    if isinstance(vectors, str | bytes):
        raise InvalidVectorError(f"{what} must be numbers, not {type(vectors).__name__}")
    try:
        arr = np.asarray(vectors)
    except ValueError as exc:  # ragged nested lists
        raise InvalidVectorError(f"{what} must all have the same length ({exc})") from None
    if arr.dtype == object:
        raise InvalidVectorError(f"{what} must be a rectangular array of numbers (ragged or mixed)")
    if arr.dtype.kind not in "biuf":
        raise InvalidVectorError(f"{what} must be numbers, not {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise InvalidVectorError(f"{what} must be 1-D or 2-D, got {arr.ndim}-D")
    if arr.shape[0] == 0:
        raise InvalidVectorError(f"{what} batch is empty")
    if arr.shape[1] == 0:
        raise InvalidVectorError(f"{what} have zero dimensions")
    if dim is not None and arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} have dimension {arr.shape[1]}, the collection holds {dim}-d vectors"
        )
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InvalidVectorError(f"{what} hold NaN or infinite values (row {bad})")
    return out


def check_ids(ids: Any) -> list[str]:
    """Return ``ids`` as a list of distinct, non-empty strings, or raise.

    A single string is a batch of one.

    >>> check_ids("a")
    ['a']
    >>> check_ids(["a", "a"])
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidIdError: id 'a' appears more than once in the batch
    """
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, Sequence) and not isinstance(ids, np.ndarray):
        raise InvalidIdError(f"ids must be a list of strings, not {type(ids).__name__}")
    out: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if isinstance(item, np.str_):
            item = str(item)
        if not isinstance(item, str):
            raise InvalidIdError(f"id at position {i} is {type(item).__name__}, ids must be str")
        if not item.strip():
            raise InvalidIdError(f"id at position {i} is empty")
        if len(item) > MAX_ID_LENGTH:
            raise InvalidIdError(f"id at position {i} is longer than {MAX_ID_LENGTH} characters")
        if "\x00" in item:
            raise InvalidIdError(f"id at position {i} holds a NUL character")
        if item in seen:
            raise InvalidIdError(f"id {item!r} appears more than once in the batch")
        seen.add(item)
        out.append(item)
    if not out:
        raise InvalidIdError("ids is empty")
    return out


def check_texts(texts: Any, n: int) -> list[str]:
    """Return ``texts`` as a list of ``n`` strings, or raise."""
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence):
        raise InvalidTextError(f"texts must be a list of str, not {type(texts).__name__}")
    if len(texts) != n:
        raise InvalidArgumentError(f"got {n} ids but {len(texts)} texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidTextError(f"text at position {i} is {type(text).__name__}, must be str")
    return list(texts)


def _check_json_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(f"{where} is {value}, JSON holds only finite numbers")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, v in value.items():
            if not isinstance(key, str):
                raise InvalidMetadataError(f"{where} has a non-string key {key!r}")
            _check_json_value(v, f"{where}.{key}")
        return
    raise InvalidMetadataError(f"{where} is {type(value).__name__}, which JSON cannot hold")


def check_metadata(metadata: Any, n: int) -> list[JSONObject]:
    """Return ``metadata`` as ``n`` JSON objects (``None`` means ``{}``), or raise."""
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, dict):
        metadata = [metadata]
    if not isinstance(metadata, Sequence) or isinstance(metadata, str):
        raise InvalidMetadataError(
            f"metadata must be a list of dicts, not {type(metadata).__name__}"
        )
    if len(metadata) != n:
        raise InvalidArgumentError(f"got {n} ids but {len(metadata)} metadata entries")
    out: list[JSONObject] = []
    for i, meta in enumerate(metadata):
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise InvalidMetadataError(
                f"metadata at position {i} is {type(meta).__name__}, must be a JSON object (dict)"
            )
        _check_json_value(meta, f"metadata[{i}]")
        out.append(meta)
    return out


def metadata_to_json(meta: JSONObject) -> str:
    """Serialise checked metadata compactly and deterministically."""
    if not meta:
        return "{}"
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def check_k(k: Any) -> int:
    """Return ``k`` as a positive int, or raise."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidArgumentError(f"k must be a positive integer, not {type(k).__name__}")
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, got {k}")
    return int(k)
