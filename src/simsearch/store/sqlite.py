"""SQLite storage: the single source of truth of a collection.

One database file in WAL mode holds every item (its float32 vector, text and
JSON metadata) with the sequence number of the write that last touched it, a
log of deleted rows, and the collection's config. Every public write is one
transaction. Indexes are derived from this data and catch up by sequence number.

A new collection appears whole or not at all: it is built in a private folder
beside its path and renamed into place, so no process ever opens a half-made
one, and a failed or refused open never has anything of another process's to
remove. Opening an existing collection reads in a snapshot and never waits for
another process's writer.

Threads: writes go through one connection, a lock held for the length of each
write transaction keeps them apart; every thread reads through a connection of
its own, so searches in several threads read at once (WAL readers never block
each other or the writer), each in its own consistent snapshot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simsearch.config import CollectionConfig
from simsearch.errors import (
    CollectionClosedError,
    CollectionExistsError,
    CorruptCollectionError,
    NotACollectionError,
    StoreBusyError,
)
from simsearch.store.catalogue import CATALOGUE_SCHEMA, fill_catalogue
from simsearch.store.reads import Changes, Int64Array, ReadTxn, StoredRow, StoreState
from simsearch.store.writes import WriteTxn
from simsearch.types import Described

__all__ = [
    "DB_FILENAME",
    "Changes",
    "Int64Array",
    "ReadTxn",
    "SQLiteStore",
    "StoredRow",
    "WriteTxn",
]

DB_FILENAME = "simsearch.sqlite3"
#: 3: every collection carries a random ``store_id`` that its saved indexes name.
#: 4: the catalogue of metadata fields, kept by triggers (see ``store/catalogue.py``).
#: 5: the lexical index of texts in FTS5, kept by triggers.
#: 6: the token vectors of multi-vector items (``tokens``), removed with their item by a
#: trigger.
#: 7: the lexical index is derived data beside the store (``index/lexical.py``): schema 5's
#: FTS5 table and its triggers are dropped.
#: 8: the catalogue's insert trigger is dropped: the store's writes catalogue the rows
#: they add, a statement a batch (see ``store/catalogue.py``).
SCHEMA_VERSION = 8
#: What earlier schemas had and later ones drop (the triggers first: they write to the
#: table).
_DROPPED = (
    "DROP TRIGGER IF EXISTS fields_insert",
    "DROP TRIGGER IF EXISTS lexical_insert",
    "DROP TRIGGER IF EXISTS lexical_delete",
    "DROP TRIGGER IF EXISTS lexical_update",
    "DROP TABLE IF EXISTS lexical",
)
#: How long a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 60.0
PAGE_SIZE = 16384
WAL_CHECKPOINT_PAGES = 2048  # 32 MiB
#: Page cache of the writing connection, and of each thread's reading one (MiB). Hits
#: described fill a reader's cache to its size, which counts against the process's peak
#: memory: 390,000 GloVe-50 vectors in a graph peaked at 1.43x vectors plus graph with
#: 64 MiB, 1.25x with 32; single-query searches at 100,000 items were as fast with either
#: (int8 within 5%). Pages past the cache come from the OS's file cache.
WRITER_CACHE_MIB = 64
READER_CACHE_MIB = 32
STORE_ID_KEY = "store_id"

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


#: Each multi-vector item's set of token vectors, packed as the collection's config says
#: (see ``multivector/tokens.py``); written in the item's transaction, gone with its row.
TOKENS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS tokens (row INTEGER PRIMARY KEY, count INTEGER NOT NULL, "
    "data BLOB NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS tokens_delete AFTER DELETE ON items BEGIN "
    "DELETE FROM tokens WHERE row = OLD.row; END",
)


def _nothing_to_fill(conn: sqlite3.Connection) -> None:
    """Items written before schema 6 hold no token vectors."""


def _busy(exc: sqlite3.OperationalError) -> Exception:
    if "locked" in str(exc) or "busy" in str(exc):
        return StoreBusyError(
            f"the collection stayed locked by another writer for over {BUSY_TIMEOUT_S:.0f} s"
        )
    return exc


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite found the file itself damaged (not a busy lock or a bad statement)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or type(exc) is sqlite3.DatabaseError


def _connect(db: Path, cache_mib: int = WRITER_CACHE_MIB) -> sqlite3.Connection:
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
        # No memory map: a catch-up reads the whole file, and mapped pages would count
        # against the process (a second copy of the vectors, as far as RSS tells); it
        # saved about 10% of describing hits, not worth that.
        conn.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")
        # Checkpoint the WAL every 32 MiB instead of SQLite's default 4 MiB: bulk ingest
        # then pays for far fewer checkpoints (each one syncs the database file).
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    except BaseException:
        conn.close()
        raise
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    """Tables, sequence counter and store id of schema ``SCHEMA_VERSION`` (in a transaction)."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    # Tables kept by triggers (the catalogue's new rows by the writes themselves): created
    # with their triggers, and filled from the items a collection written before them
    # already holds.
    for statement in _DROPPED:
        conn.execute(statement)
    for table, statements, fill in (
        ("fields", CATALOGUE_SCHEMA, fill_catalogue),
        ("tokens", TOKENS_SCHEMA, _nothing_to_fill),
    ):
        had = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone()
        for statement in statements:
            conn.execute(statement)
        if not had:
            fill(conn)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', '0')")
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (STORE_ID_KEY, uuid.uuid4().hex)
    )
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


class _Reader:
    """One thread's reading connection, how deep its snapshots nest, and the state it last
    noted (see ``SQLiteStore.remember``)."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self.depth = 0
        self.remembered: tuple[int, StoreState] | None = None


def _forget_reader(
    readers: dict[int, sqlite3.Connection], idle: threading.Condition, conn: sqlite3.Connection
) -> None:
    # Runs once the thread that owned ``conn`` has ended: nothing uses the connection now.
    with idle:
        if readers.pop(id(conn), None) is not None:
            conn.close()


class _InWrite(ReadTxn):
    """Reads inside this thread's write transaction: already the latest state."""

    def renew(self) -> None:
        return None


class SQLiteStore:
    """Durable storage of one collection in a single SQLite database."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self.collection = path.parent
        # The writing connection, shared by threads: a write holds this from BEGIN to its end.
        self._guard = threading.RLock()
        self._writer: int | None = None  # the thread inside a write transaction
        self._local = threading.local()  # each thread's _Reader
        self._readers: dict[int, sqlite3.Connection] = {}  # every reading connection open
        self._active = 0  # reads under way now (snapshots, quick reads), in any thread
        self._idle = threading.Condition()
        self._closed = False
        self.store_id = ""

    # -- opening -------------------------------------------------------------
    @staticmethod
    def create(directory: Path, config: CollectionConfig) -> SQLiteStore:
        """Create a collection at ``directory`` holding ``config``, atomically, and open it.

        If another process creates one there first, that one is opened instead (the
        caller compares its config with what it wanted).
        """
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{directory.name}.creating-", dir=directory.parent)
        )
        try:
            conn = _connect(staging / DB_FILENAME)
            try:
                conn.execute("BEGIN IMMEDIATE")
                _create_schema(conn)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('config', ?)", (config.to_json(),)
                )
                conn.execute("COMMIT")
            finally:
                conn.close()  # the last connection folds the WAL into the file
            for path in staging.iterdir():
                with path.open("rb") as fh:
                    os.fsync(fh.fileno())
            # rename() replaces only a missing or empty folder, so a collection another
            # process put there meanwhile is never overwritten: that one is opened below.
            with contextlib.suppress(OSError):
                os.rename(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return SQLiteStore.open(directory)

    @staticmethod
    def open(directory: Path) -> SQLiteStore:
        """Open the existing collection in ``directory``; a folder without one, or a
        database file without simsearch's tables (empty, or overwritten), is refused."""
        db = directory / DB_FILENAME
        if not db.is_file():
            raise NotACollectionError(f"{directory} is not a simsearch collection")
        if db.stat().st_size == 0 and not db.with_name(DB_FILENAME + "-wal").exists():
            raise CorruptCollectionError(
                f"{db} is empty (0 bytes): the collection's data is gone; restore it from a "
                "backup or remove the folder"
            )
        try:
            conn = _connect(db)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise _busy(exc) from None
            raise NotACollectionError(f"{db} is not a simsearch database: {exc}") from None
        store = SQLiteStore(conn, db)
        try:
            store._check_schema()
        except BaseException:
            conn.close()
            raise
        return store

    def _check_schema(self) -> None:
        """Refuse a file that is not simsearch's; bring an older schema up to date."""
        try:
            with self.snapshot() as snap:
                version = int(snap.query("PRAGMA user_version").fetchone()[0])
                tables = {
                    name
                    for (name,) in snap.query("SELECT name FROM sqlite_master WHERE type='table'")
                }
                store_id = snap.read_meta(STORE_ID_KEY) if "meta" in tables else None
        except CorruptCollectionError:
            raise
        except sqlite3.DatabaseError as exc:
            raise NotACollectionError(f"{self.path} is not a simsearch database: {exc}") from None
        if version > SCHEMA_VERSION:
            raise NotACollectionError(
                f"{self.collection} was written by a newer simsearch (schema {version})"
            )
        if version == 0 or not {"meta", "items", "deletions"} <= tables:
            raise NotACollectionError(
                f"{self.path} holds no simsearch collection (its tables are missing: the "
                "file was overwritten, or is another program's); restore it from a backup"
            )
        if version < SCHEMA_VERSION or store_id is None:
            with self.write() as txn:
                _create_schema(self._conn)  # IF NOT EXISTS: adds only what is missing
                store_id = txn.read_meta(STORE_ID_KEY)
        assert store_id is not None
        self.store_id = store_id

    def close(self) -> None:
        """Close every connection once the reads other threads have under way end (waiting
        at most ``BUSY_TIMEOUT_S``); a read of this thread still open (a generator's) fails
        from then on with ``CollectionClosedError``."""
        mine = 1 if self._thread().depth else 0
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._active <= mine, timeout=BUSY_TIMEOUT_S)
            readers = list(self._readers.values())
            self._readers.clear()
        with self._guard:
            for conn in readers:
                conn.close()
            self._conn.close()

    def _closed_error(self) -> CollectionClosedError:
        return CollectionClosedError(f"the collection at {self.collection} is closed")

    def _thread(self) -> _Reader:
        """This thread's reading state (its connection is made on first read)."""
        reader: _Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = _Reader()
            self._local.reader = reader
        return reader

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection; it is closed once the thread has ended (its
        thread-local state is collected), whatever started the thread."""
        reader = self._thread()
        if reader.conn is None:
            conn = _connect(self.path, READER_CACHE_MIB)
            with self._idle:
                if self._closed:
                    conn.close()
                    raise self._closed_error()
                self._readers[id(conn)] = conn
            reader.conn = conn
            weakref.finalize(reader, _forget_reader, self._readers, self._idle, conn)
        return reader.conn

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """A read under way: ``close()`` waits for it."""
        self._start_read()
        try:
            yield
        finally:
            self._end_read()

    def _start_read(self) -> None:
        with self._idle:
            if self._closed:
                raise self._closed_error()
            self._active += 1

    def _end_read(self) -> None:
        with self._idle:
            self._active -= 1
            if self._closed:  # only close() waits for the reads to end
                self._idle.notify_all()

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """SQLite's word that the file is damaged, as a CorruptCollectionError naming it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError) or not _is_damage(
                exc
            ):
                raise
            raise CorruptCollectionError(
                f"the database of the collection at {self.collection} is damaged ({exc}); "
                f"run `simsearch check {self.collection}`"
            ) from None

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        """One write transaction; it takes the database's write lock at once."""
        if self._thread().depth or self._writer == threading.get_ident():
            raise RuntimeError("a write cannot start inside a read snapshot or a write")
        with self._guard, self._mapped_errors():
            if self._closed:
                raise self._closed_error()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise _busy(exc) from None
            self._writer = threading.get_ident()
            try:
                seq = int(
                    self._conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0]
                )
                txn = WriteTxn(self._conn, seq + 1, self.collection)
                yield txn
                if txn.touched:
                    self._conn.execute("UPDATE meta SET value=? WHERE key='seq'", (str(txn.seq),))
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._writer = None

    @contextmanager
    def snapshot(self) -> Iterator[ReadTxn]:
        """A consistent read of the database on this thread's own connection. Inside a
        write it reads the write's transaction; nested in another snapshot of this thread
        (a search inside a loop over ``iter_items``, say), it reads on a connection of its
        own, so the outer one keeps its view."""
        if self._writer == threading.get_ident():
            with self._mapped_errors():
                yield _InWrite(self._conn, self.collection)
            return
        reader = self._thread()
        with self._counted(), self._mapped_errors():
            if reader.depth:
                conn = _connect(self.path, READER_CACHE_MIB)
                owned = True
            else:
                conn, owned = self._reader(), False
            reader.depth += 1
            try:
                conn.execute("BEGIN")
                try:
                    yield ReadTxn(conn, self.collection)
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
            except sqlite3.ProgrammingError:
                if self._closed:
                    raise self._closed_error() from None
                raise
            finally:
                reader.depth -= 1
                if owned:
                    conn.close()

    def remember(self, snap: ReadTxn, state: StoreState) -> None:
        """Note ``state`` as this thread's own snapshot saw it, with the database's version
        then, so :meth:`quick_state` can tell whether anything was committed since."""
        reader = self._thread()
        if reader.conn is None or snap._conn is not reader.conn:
            return  # a write's or a nested snapshot: another connection's versions
        reader.remembered = (snap.query("PRAGMA data_version").fetchone()[0], state)

    @contextmanager
    def quick_reads(self) -> Iterator[bool]:
        """Reads outside a transaction on this thread's connection, counted like a snapshot;
        yields False (read nothing) where they cannot be had: inside another read, or
        before this thread has noted a state."""
        possible = self.begin_quick()
        try:
            yield possible
        finally:
            if possible:
                self.end_quick()

    def begin_quick(self) -> bool:
        """Start :meth:`quick_reads` without a context manager (the one-query path counts
        microseconds); when true, :meth:`end_quick` must follow."""
        reader = self._thread()
        if reader.depth or reader.remembered is None or reader.conn is None:
            return False
        self._start_read()
        return True

    def end_quick(self) -> None:
        self._end_read()

    def quick_state(self) -> StoreState | None:
        """Inside :meth:`quick_reads`: the state this thread last noted, if no connection
        has committed since (one statement, no transaction); else ``None``."""
        reader = self._thread()
        if reader.remembered is None or reader.conn is None:
            return None
        try:
            version = reader.conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return None
        version_then, state = reader.remembered
        return state if version == version_then else None

    def describe_now(self, rows: list[int]) -> Described:
        """``row -> (id, text, metadata_json)`` read on this thread's connection outside a
        transaction (see :meth:`quick_state` for telling whether it saw the noted state)."""
        conn = self._thread().conn
        assert conn is not None  # inside quick_reads
        return ReadTxn(conn, self.collection).describe_rows(rows)

    def config_of(self, state: StoreState) -> CollectionConfig | None:
        """The config ``state`` names (parsed once per text)."""
        if state.config_text is None:
            return None
        return ReadTxn(self._conn, self.collection).parse_config(state.config_text)

    def read_config(self) -> CollectionConfig | None:
        with self.snapshot() as snap:
            return snap.read_config()

    def backup(self, directory: Path) -> None:
        """Copy the collection, as of one moment, into the new folder ``directory``, with
        SQLite's online backup API while other threads and processes go on writing.

        The copy is made in one step, inside one read transaction of a connection of its
        own, so it is one consistent snapshot (in WAL mode a reader never waits for the
        writer); it is written to a private folder and renamed into place, so ``directory``
        appears whole or not at all. Derived indexes are not copied: they are rebuilt
        from the copied store when it is opened. A ``directory`` that exists and is not
        an empty folder raises :class:`~simsearch.CollectionExistsError`.
        """
        if directory.exists() and not (directory.is_dir() and not any(directory.iterdir())):
            raise CollectionExistsError(f"{directory} exists already: back up into a new folder")
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.backup-", dir=directory.parent))
        try:
            source = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            try:
                target = sqlite3.connect(staging / DB_FILENAME)
                try:
                    with self._mapped_errors():
                        source.backup(target)  # pages=-1: the whole database in one step
                    target.execute("PRAGMA journal_mode=WAL")
                finally:
                    target.close()
            finally:
                source.close()
            for path in staging.iterdir():
                with path.open("rb") as fh:
                    os.fsync(fh.fileno())
            try:
                os.rename(staging, directory)
            except OSError:
                raise CollectionExistsError(
                    f"{directory} was created meanwhile: back up into a new folder"
                ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = self.path.with_name(self.path.name + suffix)
            if p.exists():
                total += p.stat().st_size
        return total
