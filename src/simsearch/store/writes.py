"""Writes to a collection's store inside one transaction, all stamped with one sequence number."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from pathlib import Path

from simsearch.config import CollectionConfig
from simsearch.store.catalogue import catalogue_rows_after, last_row
from simsearch.store.reads import REVISION_PREFIX, ReadTxn, chunks
from simsearch.types import FloatArray

__all__ = ["WriteTxn"]


class WriteTxn(ReadTxn):
    """Writes inside one transaction, all stamped with one sequence number."""

    def __init__(self, conn: sqlite3.Connection, seq: int, collection: Path) -> None:
        super().__init__(conn, collection)
        self.seq = seq
        self.touched = False

    def renew(self) -> None:
        """A write transaction sees the latest state already (it holds the write lock)."""

    def save_meta(self, key: str, value: str | None) -> None:
        """Save (or with ``None`` remove) a value beside the data, in this transaction, and
        give it a new revision (see :meth:`ReadTxn.state`)."""
        if value is None:
            self._conn.execute("DELETE FROM meta WHERE key=?", (key,))
        else:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (REVISION_PREFIX + key, uuid.uuid4().hex),
        )

    def save_config(self, config: CollectionConfig) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('config', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (config.to_json(),),
        )

    def existing_ids(self, ids: Sequence[str]) -> list[str]:
        found: list[str] = []
        for chunk in chunks(ids):
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
        last = last_row(self._conn)
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
        catalogue_rows_after(self._conn, last)
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
        # An id twice in one batch would be inserted, then updated before it was catalogued:
        # the update trigger would take off fields never counted, and count the new twice.
        if len(set(ids)) != len(ids):
            raise ValueError("an upsert batch names an id more than once")
        little = vectors.astype("<f4", copy=False)
        last = last_row(self._conn)
        self._conn.executemany(
            "INSERT INTO items (id, seq, vector, text, metadata) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET seq=excluded.seq, vector=excluded.vector, "
            "text=excluded.text, metadata=excluded.metadata",
            (
                (id_, self.seq, little[i].tobytes(), texts[i], metadata_json[i])
                for i, id_ in enumerate(ids)
            ),
        )
        catalogue_rows_after(self._conn, last)
        self.touched = True

    def save_tokens(
        self, ids: Sequence[str], counts: Sequence[int], blobs: Sequence[bytes]
    ) -> None:
        """The token vectors of items this transaction has just written (replacing any)."""
        self._conn.executemany(
            "INSERT INTO tokens (row, count, data) SELECT row, ?, ? FROM items WHERE id = ? "
            "ON CONFLICT(row) DO UPDATE SET count=excluded.count, data=excluded.data",
            zip(counts, blobs, ids, strict=True),
        )

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
        for chunk in chunks(list(ids)):
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

    def carry_pending(self, rows: Sequence[int]) -> None:
        """Keep the current new-model vectors of ``rows`` valid through this transaction's
        write of them (a change of metadata only leaves their vectors as they were)."""
        for chunk in chunks(list(rows)):
            marks = ",".join("?" for _ in chunk)
            self._conn.execute(
                f"UPDATE pending SET seq = ? WHERE row IN ({marks}) "
                "AND seq = (SELECT seq FROM items WHERE items.row = pending.row)",
                (self.seq, *chunk),
            )

    def clear_pending(self) -> None:
        self._conn.execute("DELETE FROM pending")

    def delete_rows(self, rows: Sequence[int]) -> int:
        """Delete the given rows and log them; returns how many existed."""
        deleted = 0
        for chunk in chunks(list(rows)):
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
        for chunk in chunks(ids):
            marks = ",".join("?" for _ in chunk)
            rows.extend(
                r
                for (r,) in self._conn.execute(
                    f"SELECT row FROM items WHERE id IN ({marks})", chunk
                )
            )
        return rows
