"""Checks on everything a user hands to a collection, done before anything is written.

Each check converts once at the boundary and raises a specific
:class:`~simsearch.errors.SimsearchError` subclass; none of them touches storage.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from simsearch.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidMetadataError,
    InvalidTextError,
    InvalidVectorError,
)
from simsearch.types import FloatArray, JSONObject
from simsearch.vecmath import row_sq_norms

__all__ = [
    "INT64_RANGE",
    "MAX_ID_LENGTH",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_TEXT_CHARS",
    "REFUSED_KEY_CHARACTERS",
    "as_vector_batch",
    "check_ids",
    "check_k",
    "check_metadata",
    "check_query_texts",
    "check_texts",
    "describe_invalid_unicode",
    "duplicate_ids",
    "lone_surrogate_at",
    "metadata_json",
    "metadata_to_json",
]

#: Ids are stored as SQLite TEXT and echoed in every result; keep them short enough to be keys.
MAX_ID_LENGTH = 1024
#: Objects and arrays nest at most this many levels in one item's metadata (the metadata
#: object itself is the first): what is stored must stay returnable, and JSON serialisers
#: (the server's among them) refuse much deeper values.
MAX_METADATA_DEPTH = 32
#: One item's metadata is at most this many bytes as compact UTF-8 JSON (64 KiB): every
#: filtered search parses each item's metadata and every hit returns it, so long content
#: belongs in the item's text.
MAX_METADATA_BYTES = 64 * 1024
#: What a metadata key may not hold (besides being empty): filters name keys through
#: SQLite JSON paths, which cannot express these.
REFUSED_KEY_CHARACTERS = 'NUL, " or lone surrogates'
#: One stored text at most (the encoders read far less: MiniLM embeds 256 tokens).
MAX_TEXT_CHARS = 1_000_000
#: Integers SQLite's JSON reads exactly.
INT64_RANGE = (-(2**63), 2**63 - 1)


#: Collection names a server serves become folder names: letters, digits, '_', '-' and
#: '.', not leading '.'. Match with ``re.fullmatch`` (``re.match``'s ``$`` also matches
#: before a final newline).
COLLECTION_NAME_CHARS = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}"


def check_collection_name(name: Any) -> str:
    """``name`` if a server can serve a collection by it, else raise.

    >>> check_collection_name("docs-2")
    'docs-2'
    >>> check_collection_name("../etc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidArgumentError: '../etc' is not a collection name: ...
    """
    if not isinstance(name, str) or not re.fullmatch(COLLECTION_NAME_CHARS, name):
        raise InvalidArgumentError(
            f"{name!r:.80} is not a collection name: 1-64 letters, digits, '_', '-' or '.', "
            "not starting with '.'"
        )
    return name


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
    if type(vectors) is np.ndarray and vectors.dtype in _FLOATS and 0 < vectors.ndim <= 2:
        quick = _quick_float_batch(vectors, dim)
        if quick is not None:
            return quick
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
    # A vector whose squared length overflows float32 scores inf or NaN against everything.
    with np.errstate(over="ignore", invalid="ignore"):
        sane = np.isfinite(np.einsum("ij,ij->i", out, out))
    if not sane.all():
        bad = int(np.flatnonzero(~sane)[0])
        raise InvalidVectorError(
            f"{what} are too large: the squared length of row {bad} overflows float32 "
            "(scale them down)"
        )
    return out


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _quick_float_batch(vectors: np.ndarray, dim: int | None) -> FloatArray | None:
    """A float array that passes every check of :func:`as_vector_batch`, converted, else
    ``None`` (the full checks then say what is wrong). One pass suffices: a row's squared
    length is finite exactly when its values are finite and it does not overflow."""
    arr = vectors if vectors.ndim == 2 else vectors[np.newaxis, :]
    if not arr.shape[0] or not arr.shape[1] or (dim is not None and arr.shape[1] != dim):
        return None
    if arr.dtype == np.float32:
        out = np.ascontiguousarray(arr)
    else:
        with np.errstate(over="ignore"):  # a float64 too large for float32 becomes inf
            out = np.ascontiguousarray(arr, dtype=np.float32)
    # einsum's kernel raises no floating-point warnings: overflow is simply inf.
    return out if np.isfinite(row_sq_norms(out)).all() else None


def duplicate_ids(existing: Sequence[str]) -> DuplicateIdError:
    """The error for a batch of new items whose ``existing`` ids are stored already."""
    shown = ", ".join(repr(i) for i in existing[:5])
    more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
    return DuplicateIdError(f"ids already exist: {shown}{more}; use upsert")


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
        bad = describe_invalid_unicode(item)
        if bad:
            raise InvalidIdError(f"id at position {i} {bad}")
        if item in seen:
            raise InvalidIdError(f"id {item!r} appears more than once in the batch")
        seen.add(item)
        out.append(item)
    if not out:
        raise InvalidIdError("ids is empty")
    return out


def lone_surrogate_at(text: str) -> int | None:
    r"""The index of the first lone surrogate in ``text``, or ``None`` when it is valid Unicode.

    Lone surrogates (``"\ud800"``) come from JSON escapes and from undecodable bytes in
    command lines; SQLite and UTF-8 cannot hold them, so every string is checked here.

    >>> lone_surrogate_at("ok") is None
    True
    >>> lone_surrogate_at("ab\ud800")
    2
    """
    if text.isascii():  # the common case, checked without encoding
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def describe_invalid_unicode(text: str) -> str | None:
    """A phrase naming the lone surrogate in ``text`` (to follow "... at position 3"),
    or ``None`` when there is none."""
    at = lone_surrogate_at(text)
    if at is None:
        return None
    return f"holds a lone surrogate {text[at]!r} at character {at} (not valid Unicode)"


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
        bad = describe_invalid_unicode(text)
        if bad:
            raise InvalidTextError(f"text at position {i} {bad}")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidTextError(
                f"text at position {i} is longer than {MAX_TEXT_CHARS:,} characters; split it"
            )
    return list(texts)


def check_query_texts(texts: Sequence[str]) -> list[str]:
    r"""Return the texts of a text query as a list, or raise if one is not valid Unicode.

    >>> check_query_texts(["fine", "x\udc80"])
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidTextError: query text at position 1 holds a lone surrogate '\udc80' at character 1 (not valid Unicode)
    """  # noqa: E501
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidTextError(f"query text at position {i} is {type(text).__name__}")
        bad = describe_invalid_unicode(text)
        if bad:
            raise InvalidTextError(f"query text at position {i} {bad}")
    return out


def _short(where: str) -> str:
    # Positions are built from user keys; keep messages readable whatever their length.
    return where if len(where) <= 120 else where[:117] + "..."


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str):
        raise InvalidMetadataError(f"{_short(where)} has a non-string key {key!r}")
    if not key:
        raise InvalidMetadataError(
            f"{_short(where)} has an empty key, which no filter can name; "
            f"keys may not be empty or hold {REFUSED_KEY_CHARACTERS}"
        )
    bad = describe_invalid_unicode(key)
    if bad:
        raise InvalidMetadataError(f"a key of {_short(where)} {bad}")
    for char, name in (("\x00", "a NUL character"), ('"', 'a double quote (")')):
        if char in key:
            raise InvalidMetadataError(
                f"key {key[:80]!r} of {_short(where)} holds {name}, which no filter can name; "
                f"keys may not be empty or hold {REFUSED_KEY_CHARACTERS}"
            )


def _check_json_value(value: Any, where: str, depth: int, active: set[int]) -> None:
    """Check one JSON value; ``depth`` counts the objects and arrays around it."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            # SQLite's JSON reads larger integers as inexact reals (and filters take
            # only 64-bit integers), so such a number could never be matched exactly.
            raise InvalidMetadataError(
                f"{_short(where)} is an integer outside the 64-bit range; store it as a string"
            )
        return
    if isinstance(value, str):
        bad = describe_invalid_unicode(value)
        if bad:
            raise InvalidMetadataError(f"{_short(where)} {bad}")
        if "\x00" in value:
            # SQLite's JSON functions cut a string at NUL, so a filter would compare a prefix.
            raise InvalidMetadataError(f"{_short(where)} holds a NUL character")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(
                f"{_short(where)} is {value}, JSON holds only finite numbers"
            )
        return
    if not isinstance(value, list | tuple | dict):
        raise InvalidMetadataError(
            f"{_short(where)} is {type(value).__name__}, which JSON cannot hold"
        )
    # The depth bound also bounds this recursion, whatever the input's own depth.
    if depth >= MAX_METADATA_DEPTH:
        raise InvalidMetadataError(
            f"{_short(where)} nests objects and arrays deeper than {MAX_METADATA_DEPTH} levels"
        )
    if id(value) in active:
        raise InvalidMetadataError(f"{_short(where)} holds itself, which JSON cannot hold")
    active.add(id(value))
    if isinstance(value, dict):
        for key, v in value.items():
            _check_key(key, where)
            _check_json_value(v, f"{where}.{key}", depth + 1, active)
    else:
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]", depth + 1, active)
    active.discard(id(value))


def _checked_metadata(metadata: Any, n: int) -> list[tuple[JSONObject, str]]:
    """Each entry of ``metadata`` checked, with its JSON text."""
    if metadata is None:
        return [({}, "{}") for _ in range(n)]
    if isinstance(metadata, dict):
        metadata = [metadata]
    if not isinstance(metadata, Sequence) or isinstance(metadata, str):
        raise InvalidMetadataError(
            f"metadata must be a list of dicts, not {type(metadata).__name__}"
        )
    if len(metadata) != n:
        raise InvalidArgumentError(f"got {n} ids but {len(metadata)} metadata entries")
    out: list[tuple[JSONObject, str]] = []
    for i, meta in enumerate(metadata):
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise InvalidMetadataError(
                f"metadata at position {i} is {type(meta).__name__}, must be a JSON object (dict)"
            )
        _check_json_value(meta, f"metadata[{i}]", 0, set())
        text = metadata_to_json(meta)
        # Only long texts can be over the limit in UTF-8 bytes: skip encoding the rest.
        if len(text) * 4 > MAX_METADATA_BYTES:
            size = len(text.encode("utf-8"))
            if size > MAX_METADATA_BYTES:
                raise InvalidMetadataError(
                    f"metadata at position {i} is {size:,} bytes as JSON, over the limit of "
                    f"{MAX_METADATA_BYTES:,} bytes per item; keep long content in texts"
                )
        out.append((meta, text))
    return out


def check_metadata(metadata: Any, n: int) -> list[JSONObject]:
    """Return ``metadata`` as ``n`` JSON objects (``None`` means ``{}``), or raise.

    Every stored key can be named by a filter, and whatever is stored can be returned:
    keys are non-empty and hold no NUL, no double quote and no lone surrogate; objects
    and arrays nest at most :data:`MAX_METADATA_DEPTH` levels (the metadata object
    itself is the first); one item's JSON is at most :data:`MAX_METADATA_BYTES` bytes;
    integers fit in 64 bits.

    >>> check_metadata([{"a.b": 1}, None], 2)
    [{'a.b': 1}, {}]
    >>> check_metadata([{"x": 1}, {'say "hi"': 2}], 2)
    Traceback (most recent call last):
    ...
    simsearch.errors.InvalidMetadataError: key 'say "hi"' of metadata[1] holds a double quote ("), which no filter can name; keys may not be empty or hold NUL, " or lone surrogates
    """  # noqa: E501
    return [meta for meta, _ in _checked_metadata(metadata, n)]


def metadata_json(metadata: Any, n: int) -> list[str]:
    """Check ``metadata`` as :func:`check_metadata` does and return each entry's JSON text
    (serialised once, as :func:`metadata_to_json` does)."""
    return [text for _, text in _checked_metadata(metadata, n)]


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
