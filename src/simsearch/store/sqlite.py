"""SQLite storage: the single source of truth of a collection.

One database file in WAL mode holds every item (its float32 vector, text and
JSON metadata) with the sequence number of the write that last touched it, a
log of deleted rows, and the collection's config. Every public write is one
transaction. Indexes are derived from this data and catch up by sequence number.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from simsearch.config import CollectionConfig
from simsearch.errors import NotACollectionError, StoreBusyError
from simsearch.filters import SqlFilter
from simsearch.types import FloatArray

__all__ = ["DB_FILENAME", "Changes", "Int64Array", "SQLiteStore", "StoredRow"]

DB_FILENAME = "simsearch.sqlite3"
SCHEMA_VERSION = 2
#: How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 60.0
PAGE_SIZE = 16384
WAL_CHECKPOINT_PAGES = 2048  # 32 MiB
#: SQLite's default limit on bound parameters is 32,766; stay well below it per statement.
_CHUNK = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    row      INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: indexes key on it
    id       TEXT NOT NULL UNIQUE,
    seq      INTEGER NOT NULL,
    vector   BLOB NOT NULL,                      -- float32, little-endian
    text     TEXT,
    metadata TEXT NOT NULL                       -- a JSON object
);
CREATE INDEX IF NOT EXISTS items_seq ON items (seq);
CREATE TABLE IF NOT EXISTS deletions (
    seq INTEGER NOT NULL,
    row INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deletions_seq ON deletions (seq);
-- A model upgrade in progress: each item's vector from the new encoder, valid while the
-- item's seq is unchanged (schema 2).
CREATE TABLE IF NOT EXISTS pending (
    row    INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL,
    vector BLOB NOT NULL
);
"""

Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StoredRow:
    """One item as stored, with its row number."""

    row: int
    id: str
    vector: FloatArray
    text: str | None
    metadata_json: str


@dataclass(frozen=True)
class Changes:
    """What changed after a given sequence number, as of one snapshot."""

    seq: int
    rows: Int64Array  # rows written (added or replaced), ascending
    vectors: FloatArray  # their vectors, in the same order
    deleted: Int64Array  # rows deleted


def _busy(exc: sqlite3.OperationalError) -> Exception:
    if "locked" in str(exc) or "busy" in str(exc):
        return StoreBusyError(
            f"the collection stayed locked by another writer for over {BUSY_TIMEOUT_S:.0f} s"
        )
    return exc


class SQLiteStore:
    """Durable storage of one collection in a single SQLite database."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening -------------------------------------------------------------
    @staticmethod
    def open(directory: Path, *, create: bool) -> SQLiteStore:
        """Open the store in ``directory``, creating it when ``create`` is true."""
        db = directory / DB_FILENAME
        if not db.exists():
            if not create:
                raise NotACollectionError(f"{directory} is not a simsearch collection")
            directory.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun and ended explicitly below.
        conn = sqlite3.connect(
            db, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            # Before the first table exists: a 1.5 KB vector (384-d) leaves much of a 4 KB page
            # unused, and bulk writes through 16 KB pages run about 1.5x faster here.
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode, synchronous=NORMAL already survives a crash of the process, but a
            # power loss or OS crash can undo the last commits. FULL syncs the WAL at every
            # commit, so a call that returned is durable against both; batching writes
            # amortises the one fsync per call.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
            # Checkpoint the WAL every 32 MiB instead of SQLite's default 4 MiB: bulk ingest
            # then pays for far fewer checkpoints (each one syncs the database file).
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NotACollectionError(
                    f"{directory} was written by a newer simsearch (schema {version})"
                )
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', '0')")
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise _busy(exc) from None
            raise NotACollectionError(f"{db} is not a simsearch database: {exc}") from None
        except BaseException:
            conn.close()
            raise
        return SQLiteStore(conn, db)

    def close(self) -> None:
        self._conn.close()

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """One write transaction; it takes the database's write lock at once."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from None
        try:
            seq = int(self._conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])
            txn = WriteTxn(self._conn, seq + 1)
            yield txn
            if txn.touched:
                self._conn.execute("UPDATE meta SET value=? WHERE key='seq'", (str(txn.seq),))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @contextmanager
    def snapshot(self) -> Iterator[ReadTxn]:
        """A consistent read of the database (WAL readers never block writers)."""
        self._conn.execute("BEGIN")
        try:
            yield ReadTxn(self._conn)
        finally:
            self._conn.execute("COMMIT")

    def read_config(self) -> CollectionConfig | None:
        return ReadTxn(self._conn).read_config()

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = self.path.with_name(self.path.name + suffix)
            if p.exists():
                total += p.stat().st_size
        return total


#: Rows per statement when vectors are fetched by row number.
_VECTOR_CHUNK = 65536


def _chunks(seq: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), _CHUNK):
        yield seq[start : start + _CHUNK]


def _vectors_from_blobs(blobs: Sequence[bytes], dim: int) -> FloatArray:
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)


class ReadTxn:
    """Reads inside one snapshot."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read_config(self) -> CollectionConfig | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        return CollectionConfig.from_json(row[0]) if row else None

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
        while True:
            got = cur.fetchmany(chunk)
            if not got:
                break
            yield Changes(
                seq=current,
                rows=np.fromiter((r for r, _ in got), dtype=np.int64, count=len(got)),
                vectors=_vectors_from_blobs([b for _, b in got], dim),
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

    def filter_rows(self, flt: SqlFilter, *, since: int | None = None) -> Int64Array:
        """Rows whose metadata matches ``flt``, ascending; with ``since``, only among the
        rows written after that sequence number."""
        if since is None:
            sql, params = f"SELECT row FROM items WHERE {flt.sql} ORDER BY row", flt.params
        else:
            sql = f"SELECT row FROM items WHERE seq > ? AND ({flt.sql}) ORDER BY row"
            params = [since, *flt.params]
        cur = self._conn.execute(sql, params)
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def rows_written_since(self, seq: int) -> Int64Array:
        """Rows added or replaced after ``seq``, ascending."""
        cur = self._conn.execute("SELECT row FROM items WHERE seq > ? ORDER BY row", (seq,))
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def rows_deleted_since(self, seq: int) -> Int64Array:
        """Rows deleted after ``seq``."""
        cur = self._conn.execute("SELECT row FROM deletions WHERE seq > ?", (seq,))
        return np.fromiter((r for (r,) in cur), dtype=np.int64)

    def row_by_id(self, ids: Sequence[str]) -> dict[str, int]:
        """``id -> row`` of the ids that exist."""
        out: dict[str, int] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" for _ in chunk)
            for id_, row in self._conn.execute(
                f"SELECT id, row FROM items WHERE id IN ({marks})", chunk
            ):
                out[str(id_)] = int(row)
        return out

    def describe_rows(self, rows: Sequence[int]) -> dict[int, tuple[str, str | None, str]]:
        """``row -> (id, text, metadata_json)`` for the given rows."""
        # One statement for any number of rows: the list travels as one JSON parameter.
        cur = self._conn.execute(
            "SELECT row, id, text, metadata FROM items "
            "WHERE row IN (SELECT value FROM json_each(?))",
            (json.dumps(list(rows)),),
        )
        return {row: (id_, text, meta) for row, id_, text, meta in cur}

    def vectors_of_rows(self, rows: Int64Array, dim: int) -> FloatArray:
        """The stored vectors of ``rows`` (ascending, all live in this snapshot), in that order.

        Used to rescore candidates of a quantized index and for exact search over
        a subset when the index keeps no float vectors in memory.
        """
        out = np.empty((len(rows), dim), dtype=np.float32)
        done = 0
        for start in range(0, len(rows), _VECTOR_CHUNK):
            part = rows[start : start + _VECTOR_CHUNK]
            cur = self._conn.execute(
                "SELECT row, vector FROM items WHERE row IN (SELECT value FROM json_each(?)) "
                "ORDER BY row",
                (json.dumps(part.tolist()),),
            )
            got = cur.fetchall()
            if len(got) != len(part):
                raise RuntimeError("the index refers to rows the store does not hold")
            out[done : done + len(got)] = _vectors_from_blobs([b for _, b in got], dim)
            done += len(got)
        return out

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
        for chunk in _chunks(list(rows)):
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
        for chunk in _chunks(ids):
            marks = ",".join("?" for _ in chunk)
            for row, id_, blob, text, meta in self._conn.execute(
                f"SELECT row, id, vector, text, metadata FROM items WHERE id IN ({marks})", chunk
            ):
                vec = np.frombuffer(blob, dtype="<f4").astype(np.float32)
                out[id_] = StoredRow(row, id_, vec.reshape(dim), text, meta)
        return out

    def iter_rows(self, dim: int, batch: int = 1000) -> Iterator[StoredRow]:
        """Every item in row order."""
        last = 0
        while True:
            got = self._conn.execute(
                "SELECT row, id, vector, text, metadata FROM items WHERE row > ? "
                "ORDER BY row LIMIT ?",
                (last, batch),
            ).fetchall()
            if not got:
                return
            for row, id_, blob, text, meta in got:
                vec = np.frombuffer(blob, dtype="<f4").astype(np.float32).reshape(dim)
                yield StoredRow(row, id_, vec, text, meta)
            last = got[-1][0]


class WriteTxn(ReadTxn):
    """Writes inside one transaction, all stamped with one sequence number."""

    def __init__(self, conn: sqlite3.Connection, seq: int) -> None:
        super().__init__(conn)
        self.seq = seq
        self.touched = False

    def save_meta(self, key: str, value: str | None) -> None:
        """Save (or with ``None`` remove) a value beside the data, in this transaction."""
        if value is None:
            self._conn.execute("DELETE FROM meta WHERE key=?", (key,))
        else:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    def save_config(self, config: CollectionConfig) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('config', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (config.to_json(),),
        )

    def existing_ids(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" for _ in chunk)
            found.extend(
                r
                for (r,) in self._conn.execute(f"SELECT id FROM items WHERE id IN ({marks})", chunk)
            )
        return found

    def insert(
        self,
        ids: Sequence[str],
        vectors: FloatArray,
        texts: Sequence[str | None],
        metadata_json: Sequence[str],
    ) -> list[str]:
        """Insert new ids; if any exists, insert nothing and return the existing ones."""
        little = vectors.astype("<f4", copy=False)
        self._conn.execute("SAVEPOINT insert_batch")
        try:
            self._conn.executemany(
                "INSERT INTO items (id, seq, vector, text, metadata) VALUES (?, ?, ?, ?, ?)",
                (
                    (id_, self.seq, little[i].tobytes(), texts[i], metadata_json[i])
                    for i, id_ in enumerate(ids)
                ),
            )
        except sqlite3.IntegrityError:
            self._conn.execute("ROLLBACK TO insert_batch")
            self._conn.execute("RELEASE insert_batch")
            return self.existing_ids(ids)
        self._conn.execute("RELEASE insert_batch")
        self.touched = True
        return []

    def upsert(
        self,
        ids: Sequence[str],
        vectors: FloatArray,
        texts: Sequence[str | None],
        metadata_json: Sequence[str],
    ) -> None:
        """Insert new ids; replace the vector, text and metadata of existing ones (row kept)."""
        little = vectors.astype("<f4", copy=False)
        self._conn.executemany(
            "INSERT INTO items (id, seq, vector, text, metadata) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, vector=excluded.vector, "
            "text=excluded.text, metadata=excluded.metadata",
            (
                (id_, self.seq, little[i].tobytes(), texts[i], metadata_json[i])
                for i, id_ in enumerate(ids)
            ),
        )
        self.touched = True

    def save_pending(self, rows: Sequence[int], seqs: Sequence[int], vectors: FloatArray) -> int:
        """Keep new-encoder vectors of rows that still hold the version (seq) that was
        embedded; returns how many were kept."""
        little = vectors.astype("<f4", copy=False)
        kept = 0
        for i, (row, seq) in enumerate(zip(rows, seqs, strict=True)):
            cur = self._conn.execute(
                "INSERT INTO pending (row, seq, vector) SELECT row, seq, ? FROM items "
                "WHERE row = ? AND seq = ? "
                "ON CONFLICT(row) DO UPDATE SET seq=excluded.seq, vector=excluded.vector",
                (little[i].tobytes(), row, seq),
            )
            kept += cur.rowcount
        return kept

    def save_pending_for_ids(self, ids: Sequence[str], vectors: FloatArray) -> None:
        """New-encoder vectors of items this transaction has just written."""
        rows = []
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" for _ in chunk)
            rows.extend(
                self._conn.execute(
                    f"SELECT id, row, seq FROM items WHERE id IN ({marks})", chunk
                ).fetchall()
            )
        where = {id_: (row, seq) for id_, row, seq in rows}
        picked = [where[i] for i in ids]
        self.save_pending([r for r, _ in picked], [q for _, q in picked], vectors)

    def swap_in_pending(self) -> int:
        """Replace every item's vector with its current pending one, in this transaction.

        Raises ``RuntimeError`` (and changes nothing) unless every item has one.
        """
        missing = self.count_without_pending()
        if missing:
            raise RuntimeError(f"{missing} items have no vector from the new encoder yet")
        cur = self._conn.execute(
            "UPDATE items SET seq = ?, vector = (SELECT p.vector FROM pending p "
            "WHERE p.row = items.row)",
            (self.seq,),
        )
        self._conn.execute("DELETE FROM pending")
        self.touched = True
        return int(cur.rowcount)

    def clear_pending(self) -> None:
        self._conn.execute("DELETE FROM pending")

    def delete_rows(self, rows: Sequence[int]) -> int:
        """Delete the given rows and log them; returns how many existed."""
        deleted = 0
        for chunk in _chunks(list(rows)):
            marks = ",".join("?" for _ in chunk)
            gone = self._conn.execute(
                f"DELETE FROM items WHERE row IN ({marks}) RETURNING row", chunk
            ).fetchall()
            self._conn.executemany(
                "INSERT INTO deletions (seq, row) VALUES (?, ?)",
                ((self.seq, r) for (r,) in gone),
            )
            deleted += len(gone)
        if deleted:
            self.touched = True
        return deleted

    def rows_of_ids(self, ids: Sequence[str]) -> list[int]:
        rows: list[int] = []
        for chunk in _chunks(ids):
            marks = ",".join("?" for _ in chunk)
            rows.extend(
                r
                for (r,) in self._conn.execute(
                    f"SELECT row FROM items WHERE id IN ({marks})", chunk
                )
            )
        return rows
