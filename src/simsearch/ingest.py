"""Ingest a file into a collection: check every record first, then write in batches.

The whole input is read and checked before the collection is opened, so a bad
record (a repeated id, NaN in metadata, an id that is too long...) leaves the
collection as it was, and a new collection is not created at all. Every message
names ``file:line`` and the field, as PostgreSQL's ``COPY`` does.

The writes are batched (one transaction each, with a progress bar), so a
failure after the checks, such as another writer adding one of the ids
meanwhile, can leave the batches before it stored; the message then says how
many items were stored and where the failing batch starts.
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from simsearch.chunking import chunk_text
from simsearch.collection import Collection
from simsearch.config import IndexConfig
from simsearch.encoders import DEFAULT_ENCODER, Encoder, get_encoder
from simsearch.errors import (
    DuplicateIdError,
    InvalidArgumentError,
    InvalidInputError,
    SimsearchError,
    TextTruncatedWarning,
)
from simsearch.progress import progress_bar
from simsearch.sources import BadRecord, Record, read_records
from simsearch.store import DB_FILENAME, SQLiteStore
from simsearch.validation import check_ids, check_metadata, check_texts

__all__ = [
    "CHUNK_FIELDS",
    "ON_ERROR",
    "IngestReport",
    "chunked",
    "ingest",
    "prepare",
    "text_encoder",
    "write_failure",
]

#: What ingest does with a bad record: stop before writing anything, or leave it out.
ON_ERROR = ("fail", "skip")

# The validators describe a batch ("id at position 0", "metadata[0].x"); a record is one
# item of a batch of one, so its position says nothing and the file's line replaces it.
_POSITION = re.compile(r" at position \d+")
_META_FIELD = re.compile(r"\bmetadata\[\d+\]\.")
_META = re.compile(r"\bmetadata\[\d+\]")


def _about_record(message: str) -> str:
    message = _POSITION.sub("", message)
    message = _META_FIELD.sub("metadata field ", message)
    return _META.sub("metadata", message)


def _check(record: Record) -> None:
    """The checks a collection's write makes, on one record, named by its place."""
    try:
        check_ids([record.id])
        check_texts([record.text], 1)
        check_metadata([record.metadata], 1)
    except SimsearchError as exc:
        raise type(exc)(f"{record.where}: {_about_record(str(exc))}") from None


def _count(into: Path) -> int:
    store = SQLiteStore.open(into)
    try:
        with store.snapshot() as snap:
            return snap.count()
    finally:
        store.close()


def _stored_ids(into: Path, ids: Sequence[str]) -> set[str]:
    """The ids among ``ids`` that the collection at ``into`` holds (none if it is new)."""
    if not (into / DB_FILENAME).is_file():
        return set()
    store = SQLiteStore.open(into)
    try:
        with store.snapshot() as snap:
            return set(snap.row_by_id(ids))
    finally:
        store.close()


#: Bad records a report names (the rest are counted).
SHOWN_BAD = 5


@dataclass
class IngestReport:
    """What an ingest did: how many items it stored, from where, and what it left out."""

    source: Path
    into: Path
    stored: int = 0
    held: int | None = None  # items the collection holds afterwards (None: none exists)
    first: str = ""  # place of the first and last record stored
    last: str = ""
    existing: list[str] = field(default_factory=list)  # ids skipped as already stored
    bad: list[BadRecord] = field(default_factory=list)  # records skipped as invalid

    def lines(self) -> list[str]:
        """The report for a person, one line a fact."""
        out = [
            f"stored {self.stored} items from {self.source}"
            + (f" ({self.first} to {self.last})" if self.stored else "")
        ]
        if self.existing:
            shown = ", ".join(repr(i) for i in self.existing[:SHOWN_BAD])
            more = (
                f" and {len(self.existing) - SHOWN_BAD} more"
                if len(self.existing) > SHOWN_BAD
                else ""
            )
            out.append(f"skipped {len(self.existing)} ids already in {self.into}: {shown}{more}")
        if self.bad:
            out.append(f"skipped {len(self.bad)} bad records:")
            out.extend(f"  {b.message}" for b in self.bad[:SHOWN_BAD])
            if len(self.bad) > SHOWN_BAD:
                out.append(f"  ... and {len(self.bad) - SHOWN_BAD} more")
        if self.held is None:
            out.append(f"nothing to store: {self.into} was not created")
        else:
            out.append(f"{self.into} holds {self.held} items")
        return out


#: The metadata fields that link a chunk to its record.
CHUNK_FIELDS = ("source_id", "chunk")


def text_encoder(into: Path, name: str | None) -> Encoder:
    """The encoder whose tokens measure the chunks: the one asked for, the collection's
    own, or the default."""
    if name is None and (into / DB_FILENAME).is_file():
        store = SQLiteStore.open(into)
        try:
            saved = store.read_config()
        finally:
            store.close()
        name = saved.encoder.name if saved is not None and saved.encoder is not None else None
    return get_encoder(name or DEFAULT_ENCODER)


def chunked(
    records: Iterable[Record | BadRecord], max_tokens: int, encoder: Encoder, skip_bad: bool
) -> Iterator[Record | BadRecord]:
    """Each record as pieces of at most ``max_tokens`` of ``encoder``'s tokens: items
    ``ID#0``, ``ID#1``, ... whose metadata is the record's plus ``source_id`` (the
    record's id) and ``chunk`` (0, 1, ...)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidArgumentError(f"--chunk-tokens must be at least 1, got {max_tokens!r}")
    for record in records:
        if isinstance(record, BadRecord):
            yield record
            continue
        taken = [f for f in CHUNK_FIELDS if f in record.metadata]
        if taken:
            message = (
                f"{record.where}: metadata field {taken[0]!r} is taken: --chunk-tokens links "
                f"each piece to its record in {' and '.join(CHUNK_FIELDS)}"
            )
            if not skip_bad:
                raise InvalidInputError(message)
            yield BadRecord(record.where, message)
            continue
        for i, piece in enumerate(chunk_text(record.text, max_tokens, encoder)):
            meta = {**record.metadata, "source_id": record.id, "chunk": i}
            yield Record(f"{record.id}#{i}", piece, meta, record.where, record.line)


def prepare(
    source: Path,
    into: Path,
    *,
    id_field: str,
    text_fields: Sequence[str],
    upsert: bool,
    skip_existing: bool = False,
    on_error: str = "fail",
    infer: bool = True,
    chunk_tokens: int | None = None,
    encoder: str | None = None,
    report: IngestReport | None = None,
    stored_ids: Callable[[Sequence[str]], set[str]] | None = None,
    chunk_encoder: Encoder | None = None,
) -> list[Record]:
    """Every record of ``source``, checked against the rules of a write into ``into``.

    Raises (naming ``file:line``) on the first record a write would refuse, on an id
    that appears twice in the file, and, without ``upsert`` or ``skip_existing``, on an
    id the collection already holds. With ``on_error="skip"`` bad records (and the later
    repeats of an id) are left out and listed in ``report.bad`` instead; with
    ``skip_existing`` ids the collection holds are left out and listed in
    ``report.existing``. With ``chunk_tokens``, each record becomes pieces of at most
    that many of the encoder's tokens (see :func:`chunked`; ``chunk_encoder``, when
    given, is that encoder). ``stored_ids`` tells which ids the destination holds (by
    default: those of the collection at ``into``). Reads the collection, writes nothing.
    """
    if on_error not in ON_ERROR:
        raise InvalidArgumentError(
            f"--on-error must be one of {', '.join(ON_ERROR)}, not {on_error!r}"
        )
    if upsert and skip_existing:
        raise InvalidArgumentError(
            "--upsert replaces the items that exist and --skip-existing keeps them: give one"
        )
    report = report if report is not None else IngestReport(source, into)
    skip_bad = on_error == "skip"
    records: list[Record] = []
    first: dict[str, Record] = {}
    read: Iterable[Record | BadRecord] = read_records(
        source, id_field=id_field, text_fields=text_fields, skip_bad=skip_bad, infer=infer
    )
    if chunk_tokens is not None:
        measure = chunk_encoder or text_encoder(into, encoder)
        read = chunked(read, chunk_tokens, measure, skip_bad)
    for record in read:
        try:
            if isinstance(record, BadRecord):
                raise InvalidInputError(record.message)
            _check(record)
            earlier = first.setdefault(record.id, record)
            if earlier is not record:
                place = f"line {earlier.line}" if earlier.line is not None else earlier.where
                raise InvalidArgumentError(
                    f"{record.where}: id {record.id!r} also appears on {place}"
                )
        except SimsearchError as exc:
            if not skip_bad:
                raise
            where = record.where
            report.bad.append(BadRecord(where, str(exc)))
            continue
        records.append(record)
    if not records and not report.bad:
        raise InvalidArgumentError(f"{source} holds no records")
    if not upsert:
        taken = (stored_ids or (lambda ids: _stored_ids(into, ids)))(list(first))
        if taken and skip_existing:
            report.existing = [r.id for r in records if r.id in taken]
            records = [r for r in records if r.id not in taken]
        elif taken:
            record = next(r for r in records if r.id in taken)
            more = f" (and {len(taken) - 1} more ids of {source})" if len(taken) > 1 else ""
            raise DuplicateIdError(
                f"{record.where}: id {record.id!r} is already in {into}{more}; "
                "pass --upsert to replace the items that exist, or --skip-existing to keep them"
            )
    return records


def write_failure(
    exc: Exception, into: Path, batch: list[Record], stored: int, records: list[Record]
) -> SimsearchError:
    """The error for a batch that failed after the checks passed, with what was stored."""
    where = batch[0].where
    reason = f"storing the batch from here to {batch[-1].where} failed: {exc}"
    if isinstance(exc, DuplicateIdError):  # another writer added an id since the check
        taken = _stored_ids(into, [r.id for r in batch])
        culprit = next((r for r in batch if r.id in taken), None)
        if culprit is not None:
            where = culprit.where
            reason = f"id {culprit.id!r} was stored in {into} by another writer meanwhile"
    if stored:
        done = (
            f"{stored} of {len(records)} items were stored (through {records[stored - 1].where}),"
            " the rest were not: rerun with --skip-existing to store the rest (or --upsert to"
            " replace what is there)"
        )
    else:
        done = "nothing was stored"
    message = f"{where}: {reason}; {done}"
    return type(exc)(message) if isinstance(exc, SimsearchError) else SimsearchError(message)


def _write(
    col: Collection,
    records: list[Record],
    *,
    into: Path,
    batch_size: int,
    upsert: bool,
    advance: Callable[[int], None],
    on_stored: Callable[[int], None],
) -> None:
    write = col.upsert if upsert else col.add
    stored = 0
    cut: list[tuple[int, Record]] = []  # (texts cut in a batch, the first of them)
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", TextTruncatedWarning)
                write(
                    [r.id for r in batch],
                    texts=[r.text for r in batch],
                    metadata=[r.metadata for r in batch],
                    progress=advance,
                )
        except (SimsearchError, OSError, sqlite3.Error) as exc:
            raise write_failure(exc, into, batch, stored, records) from None
        truncated = [w.message for w in caught if isinstance(w.message, TextTruncatedWarning)]
        for seen in caught:
            if not isinstance(seen.message, TextTruncatedWarning):
                warnings.warn_explicit(seen.message, seen.category, seen.filename, seen.lineno)
        # The first warning of the batch (a model upgrade's blend embeds, and warns, twice).
        if truncated and truncated[0].first is not None:
            cut.append((truncated[0].cut, batch[truncated[0].first]))
        stored += len(batch)
        on_stored(stored)
    _warn_cut(cut, len(records))


def _warn_cut(cut: list[tuple[int, Record]], total: int) -> None:
    """One warning for the whole ingest naming the first long text's place in the file
    (the encoder's own warnings name positions within a batch)."""
    if not cut:
        return
    first = cut[0][1]
    count = sum(n for n, _ in cut)
    warnings.warn(
        TextTruncatedWarning(
            f"{count} of {total} texts are longer than the model's token limit and were cut: "
            f"only their start is embedded (the first is {first.where}, of "
            f"{len(first.text):,} characters); --chunk-tokens (chunk_tokens=) splits long "
            "texts into pieces that fit",
            cut=count,
            total=total,
        ),
        stacklevel=3,
    )


def ingest(
    source: Path,
    into: Path,
    *,
    id_field: str = "id",
    text_fields: Sequence[str] = ("text",),
    encoder: str | None = None,
    metric: str | None = None,
    index: IndexConfig | None = None,
    batch_size: int = 256,
    upsert: bool = False,
    skip_existing: bool = False,
    on_error: str = "fail",
    infer: bool = True,
    chunk_tokens: int | None = None,
    note: Callable[[str], None] = lambda _: None,
) -> IngestReport:
    """Check every record of ``source``, then store them in ``into`` (created if missing).

    Returns the report of what was stored and left out (see :func:`prepare` for the
    choices). ``note`` receives a line to show when an unexpected error or an interrupt
    stops the writes part way.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    report = IngestReport(source, into)
    records = prepare(
        source, into, id_field=id_field, text_fields=text_fields, upsert=upsert,
        skip_existing=skip_existing, on_error=on_error, infer=infer,
        chunk_tokens=chunk_tokens, encoder=encoder, report=report,
    )  # fmt: skip
    exists = (into / DB_FILENAME).is_file()
    if not records:  # everything was skipped: nothing to write, nothing to create
        report.held = _count(into) if exists else None
        return report
    stored = 0

    def count(n: int) -> None:
        nonlocal stored
        stored = n

    try:
        with (
            Collection.open(
                into, metric=metric, encoder=encoder, index=index, create=not exists
            ) as col,
            progress_bar(len(records), f"Ingesting {source.name}") as advance,
        ):
            _write(
                col,
                records,
                into=into,
                batch_size=batch_size,
                upsert=upsert,
                advance=advance,
                on_stored=count,
            )
            report.stored, report.held = stored, len(col)
            report.first, report.last = records[0].where, records[-1].where
            return report
    except BaseException as exc:
        # Nothing is removed, even from a collection this run created: another writer may
        # have stored items in it meanwhile.
        if not isinstance(exc, SimsearchError) and 0 < stored < len(records):
            note(
                f"{stored} of {len(records)} items were stored (through "
                f"{records[stored - 1].where}); rerun with --skip-existing to store the rest "
                "(or --upsert to replace what is there)"
            )
        raise
