"""Browsing a collection: items by id or by filter, a page at a time, counts, and the
collections under a folder.

Every read is one store snapshot; filters go through :func:`~simsearch.filters.compile_filter`
and the store's filter path, as a search's do. Only the parts asked for are read: a page of
metadata does not decode a single vector.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.errors import InvalidArgumentError, NotACollectionError
from simsearch.filters import SqlFilter, compile_filter
from simsearch.multivector.tokens import unpack
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.store.reads import Int64Array, ReadTxn, require_all
from simsearch.types import Item, parse_stored_metadata
from simsearch.validation import INT64_RANGE, check_ids

__all__ = ["INCLUDE", "MISSING", "check_include", "count_items", "get_items", "list_collections"]

#: ``rows_of(snap, flt)``: the rows a filter allows in a snapshot, ascending.
RowsOf = Callable[[ReadTxn, SqlFilter], Int64Array]
#: The rows of a filter (or ``None``: every item) and a text filter together, ascending.
TextRows = Callable[[ReadTxn, SqlFilter | None], Int64Array]

#: What ``get`` can return of each item besides its id.
INCLUDE = ("metadata", "text", "vector", "multivector")
#: What ``get`` does with an id that does not exist.
MISSING = ("error", "skip")


def check_include(include: Any) -> frozenset[str]:
    """``include`` as a set of :data:`INCLUDE` names, or raise."""
    if isinstance(include, str):
        include = (include,)
    if not isinstance(include, Sequence | set | frozenset):
        raise InvalidArgumentError(
            f"include must be a list of {', '.join(INCLUDE)}, not {type(include).__name__}"
        )
    unknown = [str(x) for x in include if x not in INCLUDE]
    if unknown:
        raise InvalidArgumentError(
            f"include names {', '.join(map(repr, unknown))}; valid parts are: {', '.join(INCLUDE)}"
        )
    return frozenset(include)


def _check_count(value: Any, name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not 0 <= value <= INT64_RANGE[1]  # the largest count SQLite takes
    ):
        raise InvalidArgumentError(
            f"{name} must be a whole number in [0, {INT64_RANGE[1]}], got {value!r}"
        )


def _filter(where: Any) -> SqlFilter | None:
    flt = compile_filter(where) if where is not None else None
    return None if flt is None or flt.matches_all else flt


def _items(snap: ReadTxn, rows: list[int], parts: frozenset[str]) -> dict[int, Item]:
    """``row -> Item`` of live ``rows``, with only the ``parts`` asked for."""
    described = snap.describe_rows(rows)
    vectors: dict[str, Any] = {}
    dim = snap.config().dim
    if "vector" in parts and rows and dim is not None:
        # Read by id, so that a damaged vector is named by its item's id.
        stored = snap.get([id_ for id_, _, _ in described.values()], dim)
        vectors = {id_: row.vector for id_, row in stored.items()}
    sets: dict[int, Any] = {}
    multi = snap.config().multivector
    if "multivector" in parts and described and multi is not None and multi.dim is not None:
        picked = np.array(sorted(described), dtype=np.int64)
        counts, blobs = snap.token_blobs(picked)
        for row, count, blob in zip(picked.tolist(), counts, blobs, strict=True):
            sets[row] = unpack(blob, count, multi.dim, multi.storage)
    out = {}
    for row, (id_, text, meta) in described.items():
        out[row] = Item(
            id_,
            vectors.get(id_),
            text if "text" in parts else None,
            parse_stored_metadata(meta, id_) if "metadata" in parts else {},
            sets.get(row),
        )
    return out


def get_items(
    store: SQLiteStore,
    ids: Any,
    *,
    where: Any,
    limit: Any,
    offset: Any,
    include: Any,
    missing: Any,
    rows_of: RowsOf | None = None,
    text_rows: TextRows | None = None,
) -> list[Item]:
    """Items by id (in the order given), by filter (in insertion order), or both (those of
    ``ids`` that match), then ``offset`` skipped and at most ``limit`` kept. ``rows_of``
    gives a filter's rows (from payload indexes); without it SQL scans. ``text_rows``
    gives the rows of ``where`` and a text filter together, when one is asked for."""
    parts = check_include(include)
    _check_count(limit, "limit", optional=True)
    _check_count(offset, "offset", optional=False)
    if missing not in MISSING:
        raise InvalidArgumentError(
            f"missing must be one of {', '.join(map(repr, MISSING))}, got {missing!r}"
        )
    id_list = check_ids(ids) if ids is not None else None
    flt = _filter(where)
    end = None if limit is None else int(offset) + int(limit)
    with store.snapshot() as snap:
        matched = None
        if text_rows is not None:
            matched = text_rows(snap, flt)
        elif flt is not None and (rows_of is not None or id_list is not None):
            matched = rows_of(snap, flt) if rows_of is not None else snap.filter_rows(flt)
        if id_list is None and matched is not None:
            rows = matched[int(offset) : end].tolist()
        elif id_list is None:
            rows = snap.page_rows(flt, None if limit is None else int(limit), int(offset))
        else:
            found = snap.row_by_id(id_list)
            if missing == "error":
                require_all(id_list, found)
            rows = [found[i] for i in id_list if i in found]
            if matched is not None:
                allowed = set(matched.tolist())
                rows = [r for r in rows if r in allowed]
            rows = rows[int(offset) : end]
        items = _items(snap, rows, parts)
    return [items[r] for r in rows]


def count_items(
    store: SQLiteStore, where: Any, rows_of: RowsOf | None = None, text_rows: TextRows | None = None
) -> int:
    """How many items match ``where`` (all of them when it is ``None``), and the text filter
    whose rows (with ``where``'s) ``text_rows`` gives."""
    flt = _filter(where)
    with store.snapshot() as snap:
        if text_rows is not None:
            return len(text_rows(snap, flt))
        if flt is None:
            return snap.count()
        return len(rows_of(snap, flt) if rows_of is not None else snap.filter_rows(flt))


def list_collections(root: str | Path) -> list[str]:
    """The names of the collections in the folder ``root`` (its sub-folders that hold one),
    sorted; a ``root`` that is not a folder raises :class:`~simsearch.NotACollectionError`.

    >>> import tempfile, simsearch
    >>> root = tempfile.mkdtemp()
    >>> simsearch.Collection.open(f"{root}/docs", dim=2).close()
    >>> simsearch.list_collections(root)
    ['docs']
    """
    folder = Path(root)
    if not folder.is_dir():
        raise NotACollectionError(f"{folder} is not a folder")
    return sorted(
        p.name
        for p in folder.iterdir()
        if not p.name.startswith(".") and (p / DB_FILENAME).is_file()
    )
