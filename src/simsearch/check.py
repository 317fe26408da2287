"""``simsearch check``: is a collection's data sound, and can what is derived be rebuilt?

:func:`check_collection` runs SQLite's ``integrity_check`` and then simsearch's
own invariants on the store (its tables, a readable config, a sequence counter
ahead of every row, whole finite vectors of the config's dimension, metadata
that is a JSON object, text that is text, and in a multi-vector collection a
whole stored set of token vectors for every item), and checks the saved index against
its manifest and, for a graph, its bounds. It reads in a snapshot beside any
writer and changes nothing, unless asked to repair.

``repair=True`` mends derived data only, never an item: it moves a rewound
sequence counter past the last write, drops upgrade vectors whose item is
gone, catalogues the metadata fields afresh when the catalogue disagrees with
the items, and removes a saved index that fails its checks, then rebuilds and
saves it from the store. Damaged items are listed by id; delete or rewrite them.

>>> import tempfile, simsearch
>>> path = tempfile.mkdtemp() + "/c"
>>> with simsearch.Collection.open(path, metric="dot") as col:
...     col.add(["a"], vectors=[[1.0, 0.0]])
>>> check_collection(path).ok
True
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simsearch.collection import Collection
from simsearch.config import HNSW, IVFPQ, CollectionConfig
from simsearch.errors import InvalidInputError, SimsearchError
from simsearch.index.hnsw import GRAPH_FILE, META_FILE
from simsearch.index.hnsw_file import check_graph_file
from simsearch.index.persist import check_folder
from simsearch.multivector.tokens import blob_size
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.store.catalogue import COUNTED_FIELDS, REFILL
from simsearch.store.reads import ReadTxn
from simsearch.validation import check_metadata

__all__ = ["CheckReport", "check_collection"]

#: Problems of one kind listed by id before the rest are counted.
SHOWN = 10
_BLOCK = 8192


@dataclass
class CheckReport:
    """What :func:`check_collection` found and what it mended."""

    path: str
    items: int = 0
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is left wrong."""
        return not self.problems


def _listed(what: str, ids: list[str], total: int) -> str:
    shown = ", ".join(repr(i) for i in ids[:SHOWN])
    more = f" and {total - SHOWN} more" if total > SHOWN else ""
    return f"{total} item(s) with {what}: {shown}{more}"


def check_collection(path: str | Path, *, repair: bool = False) -> CheckReport:
    """Check the collection at ``path`` (see the module docs); with ``repair``, mend its
    derived data. Raises :class:`~simsearch.NotACollectionError` for a path that holds
    no collection database at all."""
    directory = Path(path)
    report = CheckReport(str(directory))
    try:
        store = SQLiteStore.open(directory)
    except SimsearchError as exc:
        if not (directory / DB_FILENAME).is_file():
            raise
        report.problems.append(f"the database cannot be opened: {exc}")
        return report
    try:
        config = _check_store(store, report, repair)
        if config is not None and config.dim is not None:
            _check_index(store, directory, config, report, repair)
    finally:
        store.close()
    return report


def _check_store(store: SQLiteStore, report: CheckReport, repair: bool) -> CollectionConfig | None:
    with store.snapshot() as snap:
        conn = snap
        messages = [m for (m,) in conn.query("PRAGMA integrity_check(20)")]
        if messages != ["ok"]:
            report.problems.extend(f"SQLite: {m}" for m in messages)
            return None  # rows read from a damaged file say little more
        report.items = snap.count()
        try:
            config = snap.read_config()
        except SimsearchError as exc:
            report.problems.append(str(exc))
            return None
        if config is None:
            report.problems.append("there is no saved config (metric, dimension)")
            return None
        behind = snap.current_seq() < snap.max_written_seq()
        dim = config.dim
        bad_ids: dict[str, list[str]] = {}

        def note(what: str, ids: list[str]) -> None:
            if ids:
                bad_ids.setdefault(what, []).extend(ids)

        if dim is not None:
            wrong = conn.query(
                "SELECT id, typeof(vector), length(vector) FROM items "
                "WHERE typeof(vector) != 'blob' OR length(vector) != ?",
                (4 * dim,),
            ).fetchall()
            sizes = {n for _, kind, n in wrong if kind == "blob"}
            if wrong and len(wrong) == report.items and len(sizes) == 1 and sizes != {0}:
                # Every vector disagrees, all alike: the config is what changed.
                report.problems.append(
                    f"the saved config says the vectors are {dim}-d, but every stored vector "
                    f"holds {sizes.pop()} bytes: the config is damaged, not the items"
                )
                return None
            note(f"vectors that are not {dim}-d float32", [i for i, _, _ in wrong])
            note("vectors holding NaN or infinity", _non_finite(conn, dim))
        note("metadata past simsearch's limits", _metadata_past_limits(conn))
        note(
            "metadata that is not a JSON object",
            [
                i
                for (i,) in conn.query(
                    "SELECT id FROM items WHERE NOT json_valid(metadata) "
                    "OR json_type(metadata) != 'object'"
                )
            ],
        )
        note(
            "text that is not text",
            [
                i
                for (i,) in conn.query(
                    "SELECT id FROM items WHERE typeof(text) NOT IN ('text', 'null')"
                )
            ],
        )
        if config.multivector is not None:
            for what, ids in _token_set_problems(conn, config):
                note(what, ids)
        orphans = int(
            conn.query(
                "SELECT COUNT(*) FROM pending WHERE row NOT IN (SELECT row FROM items)"
            ).fetchone()[0]
        )
        # Rows written around the catalogue (a raw SQL insert, an older release still
        # writing while a newer one upgraded the schema) leave it short of the items.
        counted = set(conn.query(COUNTED_FIELDS).fetchall())
        drift = len(counted ^ set(conn.query("SELECT path, type, items FROM fields").fetchall()))
    for what, ids in bad_ids.items():
        report.problems.append(_listed(what, ids, len(ids)) + "; delete or rewrite them")
    if behind:
        if repair:
            with store.write() as txn:
                txn.query("UPDATE meta SET value=? WHERE key='seq'", (str(txn.max_written_seq()),))
            report.repaired.append("moved the sequence counter past the last write")
        else:
            report.problems.append(
                "the sequence counter is behind the rows (writes would reuse numbers and "
                "indexes miss items); --repair moves it past the last write"
            )
    if orphans:
        if repair:
            with store.write() as txn:
                txn.query("DELETE FROM pending WHERE row NOT IN (SELECT row FROM items)")
            report.repaired.append(f"dropped {orphans} upgrade vector(s) of deleted items")
        else:
            report.problems.append(f"{orphans} upgrade vector(s) belong to deleted items")
    if drift:
        if repair:
            with store.write() as txn:
                for statement in REFILL:
                    txn.query(statement)
            report.repaired.append("catalogued the metadata fields afresh from the items")
        else:
            report.problems.append(
                f"the catalogue of metadata fields disagrees with the items ({drift} "
                "entries; info() lists fields from it): --repair catalogues them afresh"
            )
    return config


def _metadata_past_limits(conn: ReadTxn) -> list[str]:
    """Items whose metadata a write would refuse today (too deep, too large, keys no filter
    can name): written by an older simsearch or by hand, they may not be returnable."""
    found: list[str] = []
    cur = conn.query(
        "SELECT id, metadata FROM items WHERE metadata != '{}' AND json_valid(metadata) "
        "AND json_type(metadata) = 'object'"
    )
    while rows := cur.fetchmany(_BLOCK):
        for id_, text in rows:
            try:
                check_metadata([json.loads(text)], 1)
            except (InvalidInputError, RecursionError):
                found.append(id_)
    return found


def _token_set_problems(conn: ReadTxn, config: CollectionConfig) -> list[tuple[str, list[str]]]:
    """Items of a multi-vector collection whose set of token vectors MaxSim cannot read:
    none stored (a search that reranks them would fail), or a blob whose size is not its
    vector count times the storage's bytes a vector."""
    multi = config.multivector
    assert multi is not None
    missing = [
        i
        for (i,) in conn.query(
            "SELECT id FROM items WHERE row NOT IN (SELECT row FROM tokens) ORDER BY row"
        )
    ]
    found = [("no stored token vectors", missing)]
    if multi.dim is not None:
        per = blob_size(1, multi.dim, multi.storage)
        damaged = [
            i
            for (i,) in conn.query(
                "SELECT i.id FROM items i JOIN tokens t ON t.row = i.row "
                "WHERE typeof(t.data) != 'blob' OR t.count < 1 OR length(t.data) != t.count * ? "
                "ORDER BY i.row",
                (per,),
            )
        ]
        found.append((f"token vectors that are not whole {multi.storage} sets", damaged))
    return found


def _non_finite(conn: ReadTxn, dim: int) -> list[str]:
    found: list[str] = []
    cur = conn.query(
        "SELECT id, vector FROM items WHERE typeof(vector) = 'blob' AND length(vector) = ?",
        (4 * dim,),
    )
    while rows := cur.fetchmany(_BLOCK):
        vectors = np.frombuffer(b"".join(b for _, b in rows), dtype="<f4").reshape(len(rows), dim)
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        found.extend(rows[i][0] for i in bad.tolist())
    return found


def _check_index(
    store: SQLiteStore, directory: Path, config: CollectionConfig, report: CheckReport, repair: bool
) -> None:
    index_dir = directory / "index"
    if not isinstance(config.index, HNSW | IVFPQ) or not index_dir.exists():
        return
    assert config.dim is not None
    try:
        check_folder(index_dir, store.store_id)
        if isinstance(config.index, HNSW) and (index_dir / META_FILE).is_file():
            check_graph_file(
                index_dir / GRAPH_FILE, config.dim, config.index.m, config.index.ef_construction
            )
    except FileNotFoundError:
        return  # none saved yet: the next open builds it
    except (OSError, ValueError) as exc:
        if not repair:
            report.problems.append(
                f"the saved index fails its checks ({exc}); --repair rebuilds it from the store"
            )
            return
        shutil.rmtree(index_dir, ignore_errors=True)
        store.close()
        with Collection.open(directory, create=False):
            pass  # opening builds the index from the store, closing saves it
        report.repaired.append("rebuilt the saved index from the store")
