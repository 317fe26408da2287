"""Export and import: a collection as one file, and back, exactly.

An export holds everything a collection is made of: every item's id, vector (float32,
bit for bit), text and metadata, and the collection's config (metric, dimension,
encoder, index kind and settings, field indexes) with its saved scoring state (the
calibration, the hubness banks). Importing it builds the same collection without
embedding anything again, so export -> import -> export gives the same file.

Two formats, chosen by ``format=`` or the file's suffix:

* ``jsonl``: a first line with the header ``{"simsearch": "export", "version": 1,
  "config": {...}, "saved": {...}, "count": N}``, then one line per item,
  ``{"id": ..., "text": ..., "metadata": {...}, "vector": [...]}``. A float32 written
  as a JSON number (its exact float64 value) reads back as the same float32.
* ``parquet`` (the ``parquet`` extra, pyarrow): columns ``id``, ``text``,
  ``metadata`` (the JSON text) and ``vector`` (a fixed-size list of float32), the
  header in the file's key-value metadata under ``simsearch``.

An import checks the whole file first (header, config, every line's id, vector, text
and metadata, repeated ids) and writes nothing on a bad one; the collection is built in
a private folder and renamed into place, so it appears whole or not at all. The items are
held in memory between the check and the write (about the size of the vectors, plus
texts and metadata), as ``ingest`` holds its records.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

from simsearch.config import CollectionConfig
from simsearch.encoders.base import require
from simsearch.errors import (
    CollectionExistsError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidInputError,
    InvalidVectorError,
    SimsearchError,
)
from simsearch.multivector.refuse import refuse_multivector
from simsearch.scoring.calibration import Calibrator
from simsearch.scoring.hubness import HUBNESS_KEY, banks_from_text
from simsearch.scoring.relevance import CALIBRATION_KEY
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.store.reads import ReadTxn
from simsearch.types import FloatArray, parse_stored_metadata
from simsearch.upgrade.migration import MIGRATION_KEY
from simsearch.validation import as_vector_batch, check_ids, check_texts, metadata_json

__all__ = ["EXPORT_FORMATS", "EXPORT_VERSION", "Dump", "export_store", "import_dump", "read_dump"]

#: The layout of an export file; a newer one is refused by an older simsearch.
EXPORT_VERSION = 1
EXPORT_FORMATS = ("jsonl", "parquet")
#: Saved scoring state carried by an export, and how each is checked on import.
_SAVED: dict[str, Any] = {CALIBRATION_KEY: Calibrator.from_json, HUBNESS_KEY: banks_from_text}
_HEADER_KEYS = {"simsearch", "version", "config", "saved", "count"}
_ITEM_KEYS = {"id", "text", "metadata", "vector"}
_PARQUET_KEY = b"simsearch"


def pick_format(path: Path | None, format: str | None) -> str:
    """The export format asked for, or the one the file's suffix names (default jsonl)."""
    if format is None:
        suffix = path.suffix.lower() if path is not None else ""
        return "parquet" if suffix in (".parquet", ".pq") else "jsonl"
    if format not in EXPORT_FORMATS:
        raise InvalidArgumentError(
            f"unknown export format {format!r}; valid formats are: {', '.join(EXPORT_FORMATS)}"
        )
    return format


# -- export -------------------------------------------------------------------------------
def _header(snap: ReadTxn) -> dict[str, Any]:
    state = snap.state()
    if MIGRATION_KEY in state.keys:
        raise InvalidArgumentError(
            "a model upgrade is in progress: finish it (backfill) or cancel it before exporting"
        )
    # The config carries the payload-index declarations (``fields``) too.
    config: dict[str, Any] = json.loads(snap.config(state).to_json())
    saved = {}
    for key in _SAVED:
        text = snap.read_meta(key)
        if text is not None:
            saved[key] = json.loads(text)
    return {
        "simsearch": "export",
        "version": EXPORT_VERSION,
        "config": config,
        "saved": saved,
        "count": snap.count(),
    }


def _rows(snap: ReadTxn) -> Iterator[tuple[str, FloatArray, str | None, str]]:
    dim = snap.config().dim
    if dim is None:
        return
    for row in snap.iter_rows(dim):
        parse_stored_metadata(row.metadata_json, row.id)  # a damaged row is named, not copied
        yield row.id, row.vector, row.text, row.metadata_json


def export_store(
    store: SQLiteStore, target: str | Path | IO[str], *, format: str | None, vectors: bool
) -> int:
    """Write the collection in ``store`` to ``target`` (a path, or an open text stream for
    JSONL) as of one snapshot; returns how many items were written."""
    path = Path(target) if isinstance(target, str | Path) else None
    kind = pick_format(path, format)
    if not isinstance(vectors, bool):
        raise InvalidArgumentError(f"vectors must be true or false, got {vectors!r}")
    with store.snapshot() as snap:
        refuse_multivector(snap.config(), "export")
        header = _header(snap)
        header["vectors"] = vectors
        if kind == "parquet":
            if path is None:
                raise InvalidArgumentError("a Parquet export needs a file path, not a stream")
            return _write_parquet(path, header, _rows(snap), snap.config().dim, vectors)
        if path is None:
            assert not isinstance(target, str | Path)
            return _write_jsonl(target, header, _rows(snap), vectors)
        with path.open("w", encoding="utf-8") as sink:
            return _write_jsonl(sink, header, _rows(snap), vectors)


def _write_jsonl(
    sink: IO[str],
    header: dict[str, Any],
    rows: Iterator[tuple[str, FloatArray, str | None, str]],
    vectors: bool,
) -> int:
    sink.write(json.dumps(header, ensure_ascii=False, sort_keys=True) + "\n")
    n = 0
    for id_, vector, text, meta in rows:
        # The metadata is stored as canonical JSON: it goes out as it was stored.
        line = f'{{"id": {json.dumps(id_, ensure_ascii=False)}, '
        line += f'"text": {json.dumps(text, ensure_ascii=False)}, "metadata": {meta}'
        if vectors:
            line += f', "vector": {json.dumps(vector.tolist())}'
        sink.write(line + "}\n")
        n += 1
    return n


def _write_parquet(
    path: Path,
    header: dict[str, Any],
    rows: Iterator[tuple[str, FloatArray, str | None, str]],
    dim: int | None,
    vectors: bool,
) -> int:
    pa: Any = require("pyarrow", "parquet")
    pq: Any = require("pyarrow.parquet", "parquet")
    columns = [("id", pa.string()), ("text", pa.string()), ("metadata", pa.string())]
    if vectors:
        columns.append(("vector", pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32())))
    meta = {_PARQUET_KEY: json.dumps(header, ensure_ascii=False, sort_keys=True).encode()}
    schema = pa.schema([pa.field(name, kind, nullable=name == "text") for name, kind in columns])
    schema = schema.with_metadata(meta)
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[tuple[str, FloatArray, str | None, str]] = []

        def flush() -> None:
            data: dict[str, Any] = {
                "id": [r[0] for r in batch],
                "text": [r[2] for r in batch],
                "metadata": [r[3] for r in batch],
            }
            if vectors:
                flat = pa.array(np.concatenate([r[1] for r in batch]), type=pa.float32())
                data["vector"] = pa.FixedSizeListArray.from_arrays(flat, dim)
            writer.write_table(pa.table(data, schema=schema))

        for row in rows:
            batch.append(row)
            n += 1
            if len(batch) == 8192:
                flush()
                batch = []
        if batch:
            flush()
    return n


# -- import -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dump:
    """An export file read and checked whole: what an import writes."""

    config: CollectionConfig
    saved: dict[str, str]  # saved value's key -> its text
    ids: list[str]
    vectors: FloatArray
    texts: list[str | None]
    metadata: list[str]  # each item's checked metadata as canonical JSON


def _fail(where: str, message: str, cls: type[SimsearchError] = InvalidInputError) -> NoReturn:
    raise cls(f"{where}: {message}")


def _check_header(header: Any, where: str) -> tuple[CollectionConfig, dict[str, str], int]:
    if not isinstance(header, dict) or header.get("simsearch") != "export":
        _fail(
            where,
            "not a simsearch export (its first line is no export header); to load records "
            "of your own use `simsearch ingest`",
        )
    version = header.get("version")
    if type(version) is not int or version > EXPORT_VERSION or version < 1:
        _fail(where, f"export version {version!r}; this simsearch reads version {EXPORT_VERSION}")
    unknown = set(header) - _HEADER_KEYS - {"vectors"}
    if unknown:
        _fail(where, f"unknown header fields: {', '.join(sorted(unknown))}")
    if header.get("vectors") is False:
        _fail(
            where,
            "the export holds no vectors (it was made with --no-vectors): export again with "
            "vectors, or load the texts with `simsearch ingest`",
        )
    config_data = header.get("config")
    if not isinstance(config_data, dict):
        _fail(where, "the header has no config object")
    try:
        config = CollectionConfig.from_json(json.dumps(config_data))
    except SimsearchError as exc:
        raise InvalidArgumentError(f"{where}: the exported config is invalid: {exc}") from None
    saved_data = header.get("saved", {})
    if not isinstance(saved_data, dict):
        _fail(where, "the header's saved values are not an object")
    saved: dict[str, str] = {}
    for key, value in saved_data.items():
        if key not in _SAVED:
            _fail(where, f"unknown saved value {key!r}; valid ones are: {', '.join(_SAVED)}")
        text = json.dumps(value)
        try:
            _SAVED[key](text)
        except (ValueError, KeyError, TypeError) as exc:
            _fail(where, f"the saved {key} is unreadable: {exc}")
        saved[key] = text
    count = header.get("count")
    if type(count) is not int or count < 0:
        _fail(where, f"the header's count is {count!r}, not a whole number")
    return config, saved, count


class _Items:
    """Items gathered from a file, each checked as it comes, named by its place."""

    def __init__(self, dim: int | None) -> None:
        self.dim = dim
        self.ids: list[str] = []
        self.vectors: list[FloatArray] = []
        self.texts: list[str | None] = []
        self.metadata: list[str] = []
        self.first_seen: dict[str, str] = {}

    def add(self, where: str, id_: Any, vector: Any, text: Any, meta: Any) -> None:
        try:
            (checked_id,) = check_ids([id_])
            if text is not None:
                check_texts([text], 1)
            (meta_text,) = metadata_json([meta], 1)
            if vector is None:
                raise InvalidInputError("the item has no vector")
            batch = as_vector_batch(vector, self.dim)
            if len(batch) != 1 or np.ndim(vector) != 1:
                raise InvalidVectorError("the vector must be one flat list of numbers")
            vec = batch[0]
        except SimsearchError as exc:
            raise type(exc)(f"{where}: {str(exc).replace(' at position 0', '')}") from None
        if checked_id in self.first_seen:
            raise InvalidIdError(
                f"{where}: id {checked_id!r} appears again (first at {self.first_seen[checked_id]})"
            )
        self.first_seen[checked_id] = where
        self.dim = len(vec)
        self.ids.append(checked_id)
        self.vectors.append(vec)
        self.texts.append(text)
        self.metadata.append(meta_text)

    def dump(self, config: CollectionConfig, saved: dict[str, str], where: str) -> Dump:
        if self.vectors and config.dim is None:
            _fail(where, "the exported config has no dimension but the items have vectors")
        dim = config.dim or 1
        vectors = np.stack(self.vectors) if self.vectors else np.empty((0, dim), np.float32)
        return Dump(config, saved, self.ids, vectors, self.texts, self.metadata)


def _read_jsonl(path: Path, stream: IO[str]) -> Dump:
    first = stream.readline()
    try:
        header = json.loads(first) if first.strip() else None
    except json.JSONDecodeError as exc:
        if '"simsearch"' in first and '"export"' in first:
            _fail(f"{path}:1", f"the export header is damaged: not valid JSON ({exc.msg})")
        header = None
    config, saved, count = _check_header(header, f"{path}:1")
    items = _Items(config.dim)
    line_no = 1
    for line_no, line in enumerate(stream, 2):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise InvalidInputError(f"{where}: nested too deeply") from None
        if not isinstance(record, dict):
            _fail(where, f"an item must be a JSON object, not {type(record).__name__}")
        unknown = set(record) - _ITEM_KEYS
        if unknown:
            _fail(where, f"unknown item fields: {', '.join(sorted(unknown))}")
        items.add(where, record.get("id"), record.get("vector"), record.get("text"),
                  record.get("metadata"))  # fmt: skip
    if len(items.ids) != count:
        _fail(f"{path}", f"the header says {count} items but the file holds {len(items.ids)}"
              " (was it cut short?)")  # fmt: skip
    return items.dump(config, saved, f"{path}:1")


def _read_parquet(path: Path) -> Dump:
    require("pyarrow", "parquet")
    pq: Any = require("pyarrow.parquet", "parquet")
    try:
        table = pq.read_table(str(path))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable Parquet file ({exc})") from None
    raw = (table.schema.metadata or {}).get(_PARQUET_KEY)
    try:
        header = json.loads(raw) if raw is not None else None
    except json.JSONDecodeError:
        header = None
    config, saved, count = _check_header(header, str(path))
    missing = {"id", "text", "metadata", "vector"} - set(table.column_names)
    if missing:
        _fail(str(path), f"the table lacks the column(s) {', '.join(sorted(missing))}")
    items = _Items(config.dim)
    columns = [table.column(name).to_pylist() for name in ("id", "vector", "text", "metadata")]
    for i, (id_, vector, text, meta) in enumerate(zip(*columns, strict=True)):
        where = f"{path}: row {i}"
        try:
            parsed = json.loads(meta) if isinstance(meta, str) else meta
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: metadata is not valid JSON ({exc.msg})") from None
        if vector is not None:
            vector = np.asarray(vector, dtype=np.float32)
        items.add(where, id_, vector, text, parsed)
    if len(items.ids) != count:
        _fail(str(path), f"the header says {count} items but the file holds {len(items.ids)}")
    return items.dump(config, saved, str(path))


def read_dump(source: str | Path, *, format: str | None = None) -> Dump:
    """Read and check a whole export file (``-`` reads JSONL from standard input)."""
    if str(source) == "-":
        if pick_format(None, format) != "jsonl":
            raise InvalidArgumentError("standard input can only be read as JSONL")
        return _read_jsonl(Path("<stdin>"), sys.stdin)
    path = Path(source)
    kind = pick_format(path, format)
    if kind == "parquet":
        return _read_parquet(path)
    with path.open(encoding="utf-8") as stream:
        try:
            return _read_jsonl(path, stream)
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason})") from None


def check_target(directory: Path) -> None:
    """Refuse a target that exists and is not an empty folder (an import makes a new one)."""
    if directory.exists() and not (directory.is_dir() and not any(directory.iterdir())):
        what = "a collection" if (directory / DB_FILENAME).exists() else "something"
        raise CollectionExistsError(f"{directory} holds {what} already: import into a new folder")


def import_dump(dump: Dump, directory: Path) -> None:
    """Create the collection at ``directory`` (new, or an empty folder) from ``dump``,
    whole: built in a private folder and renamed into place."""
    check_target(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.import-", dir=directory.parent))
    try:
        built = staging / "collection"
        store = SQLiteStore.create(built, dump.config)
        try:
            with store.write() as txn:
                if dump.ids:
                    txn.insert(dump.ids, dump.vectors, dump.texts, dump.metadata)
                for key, text in dump.saved.items():
                    txn.save_meta(key, text)
        finally:
            store.close()
        if directory.is_dir():
            directory.rmdir()  # the empty folder the check above allowed
        try:
            os.rename(built, directory)
        except OSError:
            raise CollectionExistsError(
                f"{directory} was created meanwhile: import into a new folder"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
