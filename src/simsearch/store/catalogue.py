"""The catalogue of metadata fields: which fields items hold, of which JSON types, how often.

It is kept inside the transaction of every write simsearch makes, so it is exactly the
stored items' fields: no scan is needed to answer "which fields exist" (``Collection.info``),
or to tell a filter naming a field no item has (a typo) from one that matches nothing.
Values inside lists are not catalogued, as filters do not reach them by path; a list
field is catalogued as ``array``.

Deletes and metadata updates are catalogued by SQLite triggers on the items table. New
rows are catalogued by one statement a batch (:func:`catalogue_rows_after`, run by the
store's insert and upsert, the only writes that add rows): an ``AFTER INSERT`` trigger
cost more than the insert itself, since SQLite starts its program for every row
(100,000-row bulk inserts of 384-d vectors, same schema: 117,000 rows/s without it,
47,000 with it even for empty metadata, 110,000 with the statement a batch; with two
fields 34,000-39,000 against 74,000-97,000). So a row added by a raw SQL insert from
outside simsearch, or by a process still running a release before schema 8 that had
the collection open while a newer one upgraded it, is not catalogued: ``info()`` then
misses its fields, while filters on them still work (a field the catalogue lacks is
looked for in the items themselves; see ``ReadTxn.check_filter_fields``), and
``simsearch check --repair`` catalogues them afresh.
"""

from __future__ import annotations

import difflib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simsearch.config import FieldIndexSpec
from simsearch.errors import InvalidFilterError
from simsearch.filters import field_path

__all__ = [
    "CATALOGUE_SCHEMA",
    "COUNTED_FIELDS",
    "REFILL",
    "UNKNOWN_FIELD",
    "FieldInfo",
    "catalogue_rows_after",
    "check_fields",
    "field_summaries",
    "fill_catalogue",
    "last_row",
    "read_catalogue",
    "split_full_key",
]

#: A row's catalogued fields: keys of objects (not list elements, not the root), of
#: metadata that is JSON (a damaged row is skipped rather than failing the write).
_FIELDS_OF = (
    "SELECT fullkey, type FROM json_tree(CASE WHEN json_valid({m}) THEN {m} ELSE '{{}}' END) "
    "WHERE typeof(key) = 'text' AND instr(fullkey, '[') = 0"
)
_ADD = (
    "INSERT INTO fields (path, type, items) SELECT fullkey, type, 1 FROM ("
    + _FIELDS_OF
    + ") WHERE true ON CONFLICT (path, type) DO UPDATE SET items = items + 1;"
)
_REMOVE = (
    "UPDATE fields SET items = items - 1 WHERE (path, type) IN (" + _FIELDS_OF + ");"
    " DELETE FROM fields WHERE items <= 0;"
)

#: Statements (run one at a time) that create the catalogue table and its triggers (new
#: rows are catalogued by :func:`catalogue_rows_after` instead).
CATALOGUE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fields (path TEXT NOT NULL, type TEXT NOT NULL, "
    "items INTEGER NOT NULL, PRIMARY KEY (path, type)) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS fields_delete AFTER DELETE ON items BEGIN "
    + _REMOVE.format(m="OLD.metadata")
    + " END",
    "CREATE TRIGGER IF NOT EXISTS fields_update AFTER UPDATE OF metadata ON items "
    "WHEN OLD.metadata IS NOT NEW.metadata BEGIN "
    + _REMOVE.format(m="OLD.metadata")
    + " "
    + _ADD.format(m="NEW.metadata")
    + " END",
)


#: The stored items' fields counted from the items themselves (``{rows}``: a condition on
#: ``items.row`` and ``AND``, or nothing for every item).
_COUNTED = (
    "SELECT j.fullkey, j.type, count(*) FROM items, "
    "json_tree(CASE WHEN json_valid(items.metadata) THEN items.metadata ELSE '{{}}' END) AS j "
    "WHERE {rows}typeof(j.key) = 'text' AND instr(j.fullkey, '[') = 0 "
    "GROUP BY j.fullkey, j.type"
)
#: Every stored item's fields: what the catalogue holds when it is right (``simsearch
#: check`` compares the two).
COUNTED_FIELDS = _COUNTED.format(rows="")
#: Catalogues the rows above a row number (those a batch just inserted: rows only grow).
_ADD_ROWS_AFTER = (
    "INSERT INTO fields (path, type, items) SELECT * FROM ("
    + _COUNTED.format(rows="items.row > ? AND ")
    + ") WHERE true ON CONFLICT (path, type) DO UPDATE SET items = items + excluded.items"
)
#: Statements (run in order, in one write) that catalogue the stored items afresh.
REFILL = ("DELETE FROM fields", "INSERT INTO fields (path, type, items) " + COUNTED_FIELDS)


def last_row(conn: sqlite3.Connection) -> int:
    """The highest row stored (0 if none): rows a write adds next are above it."""
    return int(conn.execute("SELECT COALESCE(MAX(row), 0) FROM items").fetchone()[0])


def catalogue_rows_after(conn: sqlite3.Connection, row: int) -> None:
    """Catalogue the fields of the rows above ``row``: those the write just added (an
    upsert's replaced rows keep their numbers, and the update trigger has them)."""
    conn.execute(_ADD_ROWS_AFTER, (row,))


def fill_catalogue(conn: sqlite3.Connection) -> None:
    """Catalogue the items already stored (a collection written before the catalogue)."""
    for statement in REFILL:
        conn.execute(statement)


def split_full_key(full_key: str) -> tuple[str, ...] | None:
    """The keys of a SQLite JSON full key (``$.a."b.c"``), or ``None`` if it is not one.

    SQLite quotes a label holding anything but letters, digits and ``_``, and stored
    keys never hold a double quote (validation refuses them), so a quoted label ends
    at the next quote.
    """
    if not full_key.startswith("$"):
        return None
    keys: list[str] = []
    i, n = 1, len(full_key)
    while i < n:
        if full_key[i] != ".":
            return None
        i += 1
        if i < n and full_key[i] == '"':
            end = full_key.find('"', i + 1)
            if end < 0:
                return None
            keys.append(full_key[i + 1 : end])
            i = end + 1
        else:
            end = i
            while end < n and full_key[end] not in '."[':
                end += 1
            keys.append(full_key[i:end])
            i = end
    return tuple(keys) if keys and all(keys) else None


@dataclass(frozen=True)
class FieldInfo:
    """One metadata field: its keys (outermost first), how many items hold it, and how
    many of each JSON type (``text``, ``integer``, ``real``, ``true``, ``false``,
    ``null``, ``array``, ``object``)."""

    keys: tuple[str, ...]
    items: int
    types: dict[str, int]


def read_catalogue(conn: sqlite3.Connection) -> list[FieldInfo]:
    """Every catalogued field, in path order."""
    by_keys: dict[tuple[str, ...], dict[str, int]] = {}
    for path, kind, count in conn.execute("SELECT path, type, items FROM fields ORDER BY path"):
        keys = split_full_key(path)
        if keys is not None:
            by_keys.setdefault(keys, {})[kind] = int(count)
    return [FieldInfo(k, sum(t.values()), t) for k, t in sorted(by_keys.items())]


#: Fields ``Collection.info`` lists at most (the most common first).
MAX_LISTED_FIELDS = 1000


def field_summaries(
    fields: list[FieldInfo], indexed: Sequence[FieldIndexSpec] = ()
) -> list[dict[str, Any]]:
    """``fields`` as ``Collection.info`` lists them: the most common first, each with its
    path as a filter writes it, its item count, the count of each JSON type, and the
    kind of its payload index (``None`` if it has none)."""
    kinds = {spec.keys: spec.kind for spec in indexed}
    ranked = sorted(fields, key=lambda f: (-f.items, f.keys))[:MAX_LISTED_FIELDS]
    return [
        {
            "field": field_path(*f.keys),
            "count": f.items,
            "types": dict(f.types),
            "indexed": kinds.get(f.keys),
        }
        for f in ranked
    ]


#: How the message of a filter naming a field no item holds begins.
UNKNOWN_FIELD = "no item has a field"


def check_fields(
    named: Iterable[tuple[str, ...]], known: set[tuple[str, ...]], shown: dict[tuple[str, ...], str]
) -> None:
    """Refuse a filter naming a field no stored item holds (``known``; ``shown`` gives
    each known field's path as a filter writes it), with the closest known fields. The
    caller skips an empty collection, where every filter rightly matches nothing."""
    unknown = sorted(set(named) - known)
    if not unknown:
        return
    missing = field_path(*unknown[0])
    if not known:
        raise InvalidFilterError(
            f"{UNKNOWN_FIELD} {missing!r}: the items hold no metadata, so the filter "
            "would match nothing"
        )
    paths = sorted(shown[k] for k in known)
    close = difflib.get_close_matches(missing, paths, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(paths[:20]) + (", ..." if len(paths) > 20 else "")
    raise InvalidFilterError(
        f"{UNKNOWN_FIELD} {missing!r}{hint} (the fields are: {listed}); to test whether "
        f"a field is present, use {{{missing!r}: {{'$exists': true}}}}"
    )
