"""Reads of a collection's store inside one snapshot, and the shapes they return.

A stored row that fails simsearch's checks (a vector blob of the wrong length, metadata
that is not a JSON object) is named in a :class:`~simsearch.errors.CorruptCollectionError`
when it is asked for by id, and left out, with a warning, where the whole collection is
read (index catch-up, filters), so one damaged row does not disable the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import warnings
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.config import CollectionConfig
from simsearch.errors import CorruptCollectionError, ItemNotFoundError, NotACollectionError
from simsearch.filters import SqlFilter, field_path
from simsearch.store.catalogue import FieldInfo, check_fields, read_catalogue
from simsearch.store.scans import scan_cache, scanned
from simsearch.types import FloatArray, Item, parse_stored_metadata

__all__ = [
    "REVISION_PREFIX",
    "Changes",
    "Int64Array",
    "ReadTxn",
    "StoreState",
    "StoredRow",
    "chunks",
]

#: Each saved value beside the data has a revision under this prefix, changed with it.
REVISION_PREFIX = "rev:"

#: SQLite's default limit on bound parameters is 32,766; stay well below it per statement.
CHUNK = 900

Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StoredRow:
    """One item as stored, with its row number."""

    row: int
    id: str
    vector: FloatArray
    text: str | None
    metadata_json: str

    def item(self) -> Item:
        return Item(
            self.id, self.vector, self.text, parse_stored_metadata(self.metadata_json, self.id)
        )


@dataclass(frozen=True)
class StoreState:
    """What a search needs to know of the store first, read in one statement: the sequence
    number, the config's text, and the revision of every saved value (so a large saved
    value, a calibration or an upgrade's map, is read again only when it changed)."""

    seq: int
    config_text: str | None
    revisions: dict[str, str]
    keys: frozenset[str]  # every value saved beside the data


@dataclass(frozen=True)
class Changes:
    """What changed after a given sequence number, as of one snapshot."""

    seq: int
    rows: Int64Array  # rows written (added or replaced), ascending
    vectors: FloatArray  # their vectors, in the same order
    deleted: Int64Array  # rows deleted


@functools.lru_cache(maxsize=16)
def _config_from_text(text: str) -> CollectionConfig:
    # A config is frozen, so one parse serves every search that reads the same text.
    return CollectionConfig.from_json(text)


#: Rows whose metadata SQLite's JSON functions cannot read.
_BAD_JSON = "NOT json_valid(metadata)"


def require_all(ids: Sequence[str], found: Container[str]) -> None:
    """Raise :class:`~simsearch.ItemNotFoundError` naming the ``ids`` not ``found``."""
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(repr(i) for i in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ItemNotFoundError(f"no item with id {shown}{more}")


#: Up to this many rows are described with one parameter each.
DESCRIBE_INLINE = 200
#: Rows per statement when vectors are fetched by row number.
_VECTOR_CHUNK = 65536


def chunks(seq: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), CHUNK):
        yield seq[start : start + CHUNK]


def _vectors_from_blobs(blobs: Sequence[bytes], dim: int) -> FloatArray:
    """Blobs that are known to hold ``dim`` float32 values each, as an array."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


def _damaged(blobs: Sequence[Any], dim: int) -> list[int]:
    """Positions of the blobs that are not ``dim`` float32 values (a cut or foreign write)."""
    want = 4 * dim
    return [i for i, b in enumerate(blobs) if not isinstance(b, bytes) or len(b) != want]


def _whole(blobs: Sequence[Any], dim: int) -> FloatArray | None:
    """The blobs as one array when every one is ``dim`` float32 values, else ``None``; one
    pass in C on the path every catch-up takes."""
    try:
        joined = b"".join(blobs)
    except TypeError:  # a value stored as text or a number
        return None
    want = 4 * dim
    if len(joined) != want * len(blobs):
        return None
    if not (np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs)) == want).all():
        return None
    return np.frombuffer(joined, dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


class ReadTxn:
    """Reads inside one snapshot."""

    def __init__(self, conn: sqlite3.Connection, collection: Path) -> None:
        self._conn = conn
        self.collection = collection  # the folder, for messages

    def renew(self) -> None:
        """Move this snapshot to the latest committed state (a new read transaction)."""
        self._conn.execute("COMMIT")
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()  # the snapshot starts here

    def query(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement of the caller's in this snapshot (for inspection tools)."""
        return self._conn.execute(sql, params)

    def state(self) -> StoreState:
        """The sequence number, config text and saved values' revisions, in one statement."""
        seq, config, revisions, keys = 0, None, {}, set()
        # Large values (a calibration, an upgrade's map) stay unread: only their names come.
        for key, value in self._conn.execute(
            "SELECT key, CASE WHEN key IN ('seq', 'config') OR key GLOB 'rev:*' THEN value END "
            "FROM meta"
        ):
            if key == "seq":
                seq = int(value)
            elif key == "config":
                config = value
            elif key.startswith(REVISION_PREFIX):
                revisions[key[len(REVISION_PREFIX) :]] = value
            else:
                keys.add(key)
        return StoreState(seq, config, revisions, frozenset(keys))

    def read_config(self) -> CollectionConfig | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        return None if row is None else self.parse_config(row[0])

    def config(self, state: StoreState | None = None) -> CollectionConfig:
        """The saved config (from ``state`` when given); a collection without one is damaged."""
        text = (state or self.state()).config_text
        if text is None:
            raise CorruptCollectionError(f"the collection at {self.collection} has no saved config")
        return self.parse_config(text)

    def parse_config(self, text: str) -> CollectionConfig:
        """The config saved as ``text``; a damaged one names the collection."""
        try:
            return _config_from_text(text)
        except NotACollectionError as exc:
            if "newer simsearch" in str(exc):
                raise
            raise CorruptCollectionError(f"the collection at {self.collection}: {exc}") from None

    def max_written_seq(self) -> int:
        """The highest sequence number any row or deletion carries (0 when none)."""
        got = self._conn.execute(
            "SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM items "
            "UNION ALL SELECT MAX(seq) FROM deletions)"
        ).fetchone()[0]
        return int(got or 0)

    def _warn_damaged(self, rows: Sequence[int], what: str) -> None:
        shown = ", ".join(str(r) for r in rows[:5]) + (" ..." if len(rows) > 5 else "")
        warnings.warn(
            f"the collection at {self.collection} holds {len(rows)} row(s) with {what} "
            f"(rows {shown}); they are left out of search. Run `simsearch check "
            f"{self.collection}` for their ids",
            RuntimeWarning,
            stacklevel=4,
        )

    def _decode(self, rows: list[int], blobs: list[Any], dim: int) -> tuple[list[int], FloatArray]:
        """The rows whose blobs are whole vectors, and those vectors (others are warned of)."""
        whole = _whole(blobs, dim) if blobs else None
        if whole is not None:
            return rows, whole
        bad = _damaged(blobs, dim)
        if bad:
            if len(bad) == len(blobs) and len(blobs) >= 8 and len({len(b) for b in blobs}) == 1:
                raise CorruptCollectionError(
                    f"the collection at {self.collection} says its vectors are {dim}-d, but "
                    f"every stored vector holds {len(blobs[0])} bytes: its saved config is damaged"
                )
            self._warn_damaged([rows[i] for i in bad], f"vectors that are not {dim}-d float32")
            skip = set(bad)
            rows = [r for i, r in enumerate(rows) if i not in skip]
            blobs = [b for i, b in enumerate(blobs) if i not in skip]
        return rows, _vectors_from_blobs(blobs, dim)

    def read_meta(self, key: str) -> str | None:
        """A value saved beside the data (the calibration, for example)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def current_seq(self) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def count_since(self, seq: int) -> int:
        """How many rows were written after ``seq`` (an upper bound on rows a catch-up adds)."""
        return int(
            self._conn.execute("SELECT COUNT(*) FROM items WHERE seq > ?", (seq,)).fetchone()[0]
        )

    def changes_since(self, seq: int, dim: int, chunk: int = 8192) -> Iterator[Changes]:
        """Rows written after ``seq`` in chunks of at most ``chunk`` rows (ascending), then
        the rows deleted after ``seq``.

        Streaming keeps the memory of a catch-up to one chunk of vectors, so loading a
        whole collection does not need a second copy of all its vectors.
        """
        current = self.current_seq()
        no_rows = np.empty(0, dtype=np.int64)
        cur = self._conn.execute("SELECT row, vector FROM items WHERE seq > ? ORDER BY row", (seq,))
        for got in scanned(self._conn, cur, chunk):
            rows, vectors = self._decode([r for r, _ in got], [b for _, b in got], dim)
            yield Changes(
                seq=current,
                rows=np.asarray(rows, dtype=np.int64),
                vectors=vectors,
                deleted=no_rows,
            )
        deleted = [
            r for (r,) in self._conn.execute("SELECT row FROM deletions WHERE seq > ?", (seq,))
        ]
        yield Changes(
            seq=current,
            rows=no_rows,
            vectors=np.empty((0, dim), dtype=np.float32),
            deleted=np.asarray(deleted, dtype=np.int64),
        )

    def texts_since(self, seq: int, chunk: int) -> Iterator[tuple[list[int], list[str | None]]]:
        """Rows written after ``seq`` and their texts (``None``: none), ``chunk`` at a time."""
        cur = self._conn.execute("SELECT row, text FROM items WHERE seq > ? ORDER BY row", (seq,))
        for got in scanned(self._conn, cur, chunk):
            yield [r for r, _ in got], [t for _, t in got]

    def fields(self) -> list[FieldInfo]:
        """The metadata fields stored items hold (see :mod:`simsearch.store.catalogue`)."""
        return read_catalogue(self._conn)

    def check_filter_fields(self, flt: SqlFilter) -> None:
        """Raise :class:`~simsearch.errors.InvalidFilterError` when ``flt`` can match nothing
        because it requires a field no stored item holds (a typo), naming the close ones."""
        named = flt.required_fields
        if not named:
            return
        fields = self.fields()
        known = {f.keys for f in fields}
        if named <= known:
            return
        if not known and self._conn.execute("SELECT 1 FROM items LIMIT 1").fetchone() is None:
            return  # no items yet: nothing to tell a typo from
        for keys in named - known:
            # Not catalogued (a key holding '['): ask the items themselves.
            path = "$" + "".join(f'."{json.dumps(k, ensure_ascii=False)[1:-1]}"' for k in keys)
            found = self._conn.execute(
                "SELECT 1 FROM items WHERE json_valid(metadata) AND "
                "json_type(metadata, ?) IS NOT NULL LIMIT 1",
                (path,),
            ).fetchone()
            if found:
                known.add(keys)
        check_fields(named, known, {k: field_path(*k) for k in known})

    def filter_rows(self, flt: SqlFilter, *, since: int | None = None) -> Int64Array:
        """Rows whose metadata matches ``flt``, ascending; with ``since``, only among the
        rows written after that sequence number. A filter requiring a field no item holds
        raises (see :meth:`check_filter_fields`)."""
        self.check_filter_fields(flt)
        try:
            return self._filter_rows(flt, since, "1")
        except sqlite3.OperationalError as exc:
            if "malformed JSON" not in str(exc):
                raise
        # A row whose metadata is not JSON (a damaged or foreign write): filter the others,
        # and say which rows were left out.
        bad = [r for (r,) in self._conn.execute(f"SELECT row FROM items WHERE {_BAD_JSON}")]
        self._warn_damaged(bad, "metadata that is not JSON")
        return self._filter_rows(flt, since, f"NOT ({_BAD_JSON})")

    def _filter_rows(self, flt: SqlFilter, since: int | None, guard: str) -> Int64Array:
        if since is None:
            sql = f"SELECT row FROM items WHERE {guard} AND ({flt.sql}) ORDER BY row"
            params = flt.params
        else:
            sql = f"SELECT row FROM items WHERE {guard} AND seq > ? AND ({flt.sql}) ORDER BY row"
            params = [since, *flt.params]
        cur = self._conn.execute(sql, params)
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def rows_written_since(self, seq: int) -> Int64Array:
        """Rows added or replaced after ``seq``, ascending."""
        cur = self._conn.execute("SELECT row FROM items WHERE seq > ? ORDER BY row", (seq,))
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def field_values_since(
        self, seq: int, paths: Sequence[str]
    ) -> tuple[Int64Array, list[tuple[list[str | None], list[Any]]]]:
        """Rows written after ``seq`` (ascending) and, for each JSON path, the JSON type and
        the scalar value at it in each row (``None`` where it is missing or not a
        scalar). Rows whose metadata is not JSON read as holding no field."""
        columns = ", ".join(
            "json_type(m, ?), CASE WHEN json_type(m, ?) IN ('integer', 'real', 'text') "
            "THEN json_extract(m, ?) END"
            for _ in paths
        )
        sql = (
            f"SELECT row, {columns} FROM (SELECT row, CASE WHEN json_valid(metadata) THEN "
            "metadata ELSE '{}' END AS m FROM items WHERE seq > ?) ORDER BY row"
        )
        params = [seq, *(p for path in paths for p in (path, path, path))]
        # The subquery's parameter comes first in the text but is bound by position.
        params = [*params[1:], seq]
        fetched = self._conn.execute(sql, params).fetchall()
        rows = np.fromiter((r[0] for r in fetched), dtype=np.int64, count=len(fetched))
        out = [
            ([r[1 + 2 * i] for r in fetched], [r[2 + 2 * i] for r in fetched])
            for i in range(len(paths))
        ]
        return rows, out

    def rows_deleted_since(self, seq: int) -> Int64Array:
        """Rows deleted after ``seq``."""
        cur = self._conn.execute("SELECT row FROM deletions WHERE seq > ?", (seq,))
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def row_by_id(self, ids: Sequence[str]) -> dict[str, int]:
        """``id -> row`` of the ids that exist."""
        out: dict[str, int] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" for _ in chunk)
            for id_, row in self._conn.execute(
                f"SELECT id, row FROM items WHERE id IN ({marks})", chunk
            ):
                out[str(id_)] = int(row)
        return out

    def rows_unchanged_since(self, rows: Int64Array, seq: int) -> Int64Array:
        """Those of ``rows`` (ascending) that exist and were last written at or before ``seq``."""
        cur = self._conn.execute(
            "SELECT row FROM items WHERE row IN (SELECT value FROM json_each(?)) AND seq <= ? "
            "ORDER BY row",
            (json.dumps(rows.tolist()), seq),
        )
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def describe_rows(self, rows: Sequence[int]) -> dict[int, tuple[str, str | None, str]]:
        """``row -> (id, text, metadata_json)`` for the given rows."""
        if len(rows) <= DESCRIBE_INLINE:  # a search's hits: a short list of parameters
            marks = ",".join("?" * len(rows))
            cur = self._conn.execute(
                f"SELECT row, id, text, metadata FROM items WHERE row IN ({marks})", list(rows)
            )
        else:  # one statement for any number of rows: the list travels as one JSON text
            cur = self._conn.execute(
                "SELECT row, id, text, metadata FROM items "
                "WHERE row IN (SELECT value FROM json_each(?))",
                (json.dumps(list(rows)),),
            )
        return {row: (id_, text, meta) for row, id_, text, meta in cur}

    def page_rows(self, flt: SqlFilter | None, limit: int | None, offset: int) -> list[int]:
        """Rows in row (insertion) order, only those matching ``flt`` when given, the first
        ``offset`` skipped, at most ``limit`` (``None``: all)."""
        if flt is None:
            cur = self._conn.execute(
                "SELECT row FROM items ORDER BY row LIMIT ? OFFSET ?",
                (-1 if limit is None else limit, offset),
            )
            return [int(r) for (r,) in cur]
        matched = self.filter_rows(flt)
        return [int(r) for r in matched[offset : None if limit is None else offset + limit]]

    def _by_row(self, select: str, rows: Int64Array) -> Iterator[tuple[Int64Array, list[Any]]]:
        """Run ``select`` (a SELECT ... FROM over a table with a ``row`` column) for
        ``rows`` (ascending) in chunks a statement can hold: each chunk and its results,
        in row order (a row the table lacks is simply missing from them)."""
        for start in range(0, len(rows), _VECTOR_CHUNK):
            part = rows[start : start + _VECTOR_CHUNK]
            got = self._conn.execute(
                f"{select} WHERE row IN (SELECT value FROM json_each(?)) ORDER BY row",
                (json.dumps(part.tolist()),),
            ).fetchall()
            yield part, got

    def vectors_of_rows(self, rows: Int64Array, dim: int) -> FloatArray:
        """The stored vectors of ``rows`` (ascending, all live in this snapshot), in that order.

        Used to rescore candidates of a quantized index and for exact search over
        a subset when the index keeps no float vectors in memory.
        """
        out = np.empty((len(rows), dim), dtype=np.float32)
        done = 0
        for part, got in self._by_row("SELECT row, vector FROM items", rows):
            if len(got) != len(part):
                raise RuntimeError("the index refers to rows the store does not hold")
            blobs = [b for _, b in got]
            bad = _damaged(blobs, dim)
            if bad:
                raise CorruptCollectionError(
                    f"row {got[bad[0]][0]} of the collection at {self.collection} holds a "
                    f"damaged vector; run `simsearch check {self.collection}`"
                )
            out[done : done + len(got)] = _vectors_from_blobs(blobs, dim)
            done += len(got)
        return out

    def token_counts(self, rows: Int64Array) -> tuple[list[int], int]:
        """How many token vectors each of ``rows`` (ascending) holds, and their sum."""
        counts: list[int] = []
        for _, got in self._by_row("SELECT count FROM tokens", rows):
            counts.extend(c for (c,) in got)
        if len(counts) != len(rows):
            raise CorruptCollectionError(
                f"{len(rows) - len(counts)} items of the collection at {self.collection} have "
                f"no stored token vectors; run `simsearch check {self.collection}`"
            )
        return counts, sum(counts)

    def token_blobs(self, rows: Int64Array) -> tuple[list[int], list[bytes]]:
        """The packed token vectors of ``rows`` (ascending, all live in this snapshot): each
        set's vector count and blob, in that order."""
        counts: list[int] = []
        blobs: list[bytes] = []
        for part, got in self._by_row("SELECT count, data FROM tokens", rows):
            if len(got) != len(part):
                raise CorruptCollectionError(
                    f"{len(part) - len(got)} items of the collection at {self.collection} have "
                    f"no stored token vectors; run `simsearch check {self.collection}`"
                )
            counts.extend(c for c, _ in got)
            blobs.extend(b for _, b in got)
        return counts, blobs

    # -- a model upgrade ----------------------------------------------------------------------
    _STALE = (
        "FROM items i LEFT JOIN pending p ON p.row = i.row "
        "WHERE i.text IS NOT NULL AND (p.row IS NULL OR p.seq != i.seq)"
    )

    def rows_to_backfill(self, limit: int) -> list[tuple[int, int, str]]:
        """``(row, seq, text)`` of items whose new-encoder vector is missing or stale."""
        cur = self._conn.execute(
            f"SELECT i.row, i.seq, i.text {self._STALE} ORDER BY i.row LIMIT ?", (limit,)
        )
        return [(int(r), int(q), str(t)) for r, q, t in cur]

    def count_to_backfill(self) -> int:
        return int(self._conn.execute(f"SELECT COUNT(*) {self._STALE}").fetchone()[0])

    def count_without_text(self) -> int:
        return int(
            self._conn.execute("SELECT COUNT(*) FROM items WHERE text IS NULL").fetchone()[0]
        )

    def count_without_pending(self) -> int:
        """Items, with or without text, that have no current new-model vector."""
        return int(
            self._conn.execute(
                "SELECT COUNT(*) FROM items i LEFT JOIN pending p ON p.row = i.row "
                "AND p.seq = i.seq WHERE p.row IS NULL"
            ).fetchone()[0]
        )

    def pending_of_rows(
        self, rows: Sequence[int], dim: int
    ) -> dict[int, tuple[int, FloatArray | None]]:
        """``row -> (seq, current new-model vector or None)`` of live ``rows``."""
        out: dict[int, tuple[int, FloatArray | None]] = {}
        for chunk in chunks(list(rows)):
            cur = self._conn.execute(
                "SELECT i.row, i.seq, p.vector FROM items i LEFT JOIN pending p "
                "ON p.row = i.row AND p.seq = i.seq "
                "WHERE i.row IN (SELECT value FROM json_each(?))",
                (json.dumps(chunk),),
            )
            for row, seq, blob in cur:
                vector = None if blob is None else _vectors_from_blobs([blob], dim)[0]
                out[int(row)] = (int(seq), vector)
        return out

    def pending_vectors(self, dim: int) -> dict[str, FloatArray]:
        """``id -> new-encoder vector`` of every item whose pending vector is current."""
        cur = self._conn.execute(
            "SELECT i.id, p.vector FROM items i JOIN pending p ON p.row = i.row AND p.seq = i.seq"
        )
        return {
            id_: np.frombuffer(b, dtype="<f4").astype(np.float32).reshape(dim) for id_, b in cur
        }

    def get(self, ids: Sequence[str], dim: int) -> dict[str, StoredRow]:
        """Stored rows by id; ids that do not exist are absent from the result."""
        out: dict[str, StoredRow] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" for _ in chunk)
            for row, id_, blob, text, meta in self._conn.execute(
                f"SELECT row, id, vector, text, metadata FROM items WHERE id IN ({marks})", chunk
            ):
                out[id_] = StoredRow(row, id_, self._one_vector(row, id_, blob, dim), text, meta)
        return out

    def items(self, ids: Sequence[str]) -> list[Item]:
        """The items with ``ids``, in that order; a missing id raises ItemNotFoundError."""
        dim = self.config().dim
        found = self.get(ids, dim) if dim is not None else {}
        require_all(ids, found)
        return [found[i].item() for i in ids]

    def iter_items(self, batch: int = 1000) -> Iterator[Item]:
        """Every item in row (insertion) order."""
        dim = self.config().dim
        if dim is not None:
            for row in self.iter_rows(dim, batch):
                yield row.item()

    def iter_rows(self, dim: int, batch: int = 1000) -> Iterator[StoredRow]:
        """Every item in row order (a statement a batch: the caller may read in between)."""
        last = 0
        with contextlib.ExitStack() as scan:
            while got := self._conn.execute(
                "SELECT row, id, vector, text, metadata FROM items WHERE row > ? "
                "ORDER BY row LIMIT ?",
                (last, batch),
            ).fetchall():
                for row, id_, blob, text, meta in got:
                    yield StoredRow(row, id_, self._one_vector(row, id_, blob, dim), text, meta)
                if not last:
                    scan.enter_context(scan_cache(self._conn))
                last = got[-1][0]

    def _one_vector(self, row: int, id_: str, blob: Any, dim: int) -> FloatArray:
        if _damaged([blob], dim):
            raise CorruptCollectionError(
                f"item {id_!r} (row {row}) of the collection at {self.collection} holds a "
                f"damaged vector; delete it or write it again"
            )
        return np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(dim)
