"""A collection's payload indexes, kept in step with its store like the vector index.

The fields to index are declared in the collection's config (``Collection.index_field``),
so every process sees the same ones. The columns (:mod:`simsearch.index.fields`) are
derived data: built from the store on first use, brought up to each search's
snapshot by sequence number (rows written and deleted since, other processes' writes
too), saved when the collection closes with the sequence number they hold, and loaded
on the next open only when they are this store's, intact, and for the same
declarations; otherwise they are built again. Writes stay one transaction in the
store: nothing here is written before the store commits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.config import CollectionConfig, FieldIndexSpec
from simsearch.filters import SqlFilter
from simsearch.index.base import Int64Array
from simsearch.index.fields import FieldColumn, Mask, covers, evaluate
from simsearch.index.persist import load_saved, replace_folder, saved_meta
from simsearch.store.reads import ReadTxn

__all__ = ["FIELDS_DIR", "FieldIndexes"]

FIELDS_DIR = "fields"
_META = "fields.json"


def _json_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{json.dumps(k, ensure_ascii=False)[1:-1]}"' for k in keys)


class FieldIndexes:
    """The payload indexes of one collection (used under the index keeper's lock)."""

    def __init__(self, directory: Path, store_id: str) -> None:
        self.directory = directory / FIELDS_DIR
        self._store_id = store_id
        self.specs: tuple[FieldIndexSpec, ...] = ()
        self.columns: dict[tuple[str, ...], FieldColumn] = {}
        self.live: Mask = np.zeros(0, dtype=bool)
        self.applied_seq = 0
        self.saved_seq = -1
        self._tried_load = False

    # -- keeping up ------------------------------------------------------------------------
    def catch_up(self, snap: ReadTxn, seq: int, config: CollectionConfig) -> None:
        """Bring the columns to ``seq`` (the snapshot's), building them for new declarations."""
        if config.fields != self.specs:
            self._start(snap, config.fields)
        if not self.specs or seq == self.applied_seq:
            return
        self._apply(snap, self.applied_seq)
        self.applied_seq = seq

    def _start(self, snap: ReadTxn, specs: tuple[FieldIndexSpec, ...]) -> None:
        self.specs = specs
        self.columns = {spec.keys: FieldColumn(spec) for spec in specs}
        self.live = np.zeros(0, dtype=bool)
        self.applied_seq = 0
        self.saved_seq = -1
        if specs and not self._tried_load:
            self._tried_load = True
            self._load(snap)

    def _apply(self, snap: ReadTxn, since: int) -> None:
        specs = list(self.columns.values())
        deleted = snap.rows_deleted_since(since)
        rows, values = snap.field_values_since(since, [_json_path(c.spec.keys) for c in specs])
        top = max(
            int(rows.max()) + 1 if len(rows) else 0, int(deleted.max()) + 1 if len(deleted) else 0
        )
        self._grow(top)
        self.live[deleted] = False
        self.live[rows] = True
        for column, (kinds, found) in zip(specs, values, strict=True):
            column.grow(len(self.live))
            column.clear(deleted)
            column.set(rows, kinds, found)

    def _grow(self, top: int) -> None:
        if top > len(self.live):
            size = max(top, 2 * len(self.live), 1024)
            self.live = np.concatenate([self.live, np.zeros(size - len(self.live), dtype=bool)])

    # -- answering filters -------------------------------------------------------------------
    def covers(self, flt: SqlFilter) -> bool:
        """Whether every field ``flt`` compares is indexed (the values may still send it to
        SQL, see :meth:`rows`)."""
        return bool(self.columns) and covers(flt.tree, self.columns)

    def rows(
        self, snap: ReadTxn, seq: int, config: CollectionConfig, flt: SqlFilter
    ) -> Int64Array | None:
        """The rows ``flt`` allows at ``seq``, ascending, from the payload indexes; ``None``
        when a field it compares is not indexed or a column cannot answer exactly."""
        if not config.fields or not covers(flt.tree, {s.keys for s in config.fields}):
            return None
        if seq < self.applied_seq:
            return None  # a snapshot older than the columns: SQL reads it exactly
        self.catch_up(snap, seq, config)
        found = evaluate(flt.tree, self.columns, self.live)
        if found is None:
            return None
        snap.check_filter_fields(flt)
        return np.flatnonzero(found).astype(np.int64)

    def describe(self, specs: tuple[FieldIndexSpec, ...]) -> list[dict[str, Any]]:
        """Each declared index's field, kind and memory in bytes (``None`` until built in
        this process), for ``Collection.info``."""
        out = []
        for spec in specs:
            column = self.columns.get(spec.keys) if spec in self.specs else None
            built = column is not None and self.applied_seq > 0
            out.append(
                {
                    "field": spec.field,
                    "kind": spec.kind,
                    "window": spec.window,
                    "bytes": (column.nbytes() + self.live.nbytes) if built and column else None,
                }
            )
        return out

    # -- saving and loading --------------------------------------------------------------------
    def save(self) -> None:
        """Save the columns when they changed since the last save (best effort: they are
        derived, and the next open builds them again if this fails)."""
        if not self.specs or self.saved_seq == self.applied_seq or self.applied_seq == 0:
            return

        def write(folder: Path) -> None:
            meta = {
                "seq": self.applied_seq,
                "specs": [[s.field, s.kind, s.window] for s in self.specs],
                "strings": [c.strings for c in self.columns.values()],
            }
            (folder / _META).write_text(json.dumps(meta))
            np.save(folder / "live.npy", self.live)
            for i, column in enumerate(self.columns.values()):
                np.save(folder / f"{i}.types.npy", column.types)
                np.save(folder / f"{i}.numbers.npy", column.numbers)
                np.save(folder / f"{i}.codes.npy", column.codes)

        replace_folder(self.directory, self._store_id, write)
        self.saved_seq = self.applied_seq

    def _load(self, snap: ReadTxn) -> None:
        specs = [[s.field, s.kind, s.window] for s in self.specs]

        def read() -> tuple[tuple[dict[tuple[str, ...], FieldColumn], Any], int]:
            meta = saved_meta(self.directory, self._store_id, _META, "specs", specs)
            live = np.load(self.directory / "live.npy", allow_pickle=False)
            columns = {spec.keys: FieldColumn(spec) for spec in self.specs}
            for i, (column, strings) in enumerate(
                zip(columns.values(), meta["strings"], strict=True)
            ):
                arrays = [
                    np.load(self.directory / f"{i}.{part}.npy", allow_pickle=False)
                    for part in ("types", "numbers", "codes")
                ]
                _check_shapes(arrays, len(live), len(strings), column)
                column.restore(arrays[0], arrays[1], arrays[2], [str(s) for s in strings])
            return (columns, live), int(meta["seq"])

        loaded = load_saved(
            read,
            snap.current_seq(),
            f"the saved field indexes of {snap.collection} were not used",
            "they are built from the store",
            errors=(OSError, ValueError, KeyError, TypeError),
        )
        if loaded is not None:
            (self.columns, self.live), seq = loaded
            self.applied_seq = self.saved_seq = seq


def _check_shapes(arrays: list[Any], size: int, strings: int, column: FieldColumn) -> None:
    """Refuse saved columns whose shapes or values could index out of bounds."""
    types, numbers, codes = arrays
    if types.dtype != np.int8 or types.shape != (size,):
        raise ValueError("a saved type column has the wrong shape")
    if types.min(initial=0) < 0 or types.max(initial=0) > 7:
        raise ValueError("a saved type column holds unknown types")
    want_numbers = size if len(column.numbers) else 0
    if numbers.dtype != np.float64 or numbers.shape != (want_numbers,):
        raise ValueError("a saved number column has the wrong shape")
    want_codes = size if len(column.codes) else 0
    if codes.dtype != np.int32 or codes.shape != (want_codes,):
        raise ValueError("a saved code column has the wrong shape")
    if len(codes) and (codes.min(initial=-1) < -1 or codes.max(initial=-1) >= strings):
        raise ValueError("a saved code column names strings that are not saved")
