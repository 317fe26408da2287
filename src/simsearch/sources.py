"""Read records to ingest from JSONL, CSV/TSV, plain text or a folder of text files.

Each record becomes ``(id, text, metadata)``: the id and text come from the
named fields, every other field goes into metadata. Each record also carries
where it came from (``file:line``, or the file for a folder), so that every
error about it can name the place, as PostgreSQL's ``COPY`` does.

Files are read as UTF-8, a leading byte-order mark is dropped; bytes that are
not UTF-8 are an error naming the line.

What a field may hold:

- an id is a string or an integer (``7`` becomes ``"7"``); anything else
  (a fraction, ``true``, an object, a list) is refused rather than guessed at;
- a text field is a string or a finite number (``2001`` becomes ``"2001"``);
  ``null`` and ``""`` count as absent; an object, a list or ``true``/``false``
  is refused, because turning them into a string would store Python's rendering
  of them (``"{'a': 1}"``) as the text to embed.

CSV and TSV cells are all text; their metadata values are typed the way a person
reads them (``infer=True``, the default; see :func:`typed_cell`): integers, decimal
numbers, ``true``/``false``, and an empty cell as a missing field, so that
``{"year": 2012}`` matches a ``year`` column. ``infer=False`` keeps every cell a string.

With ``skip_bad=True`` a record the reader cannot make sense of comes out as a
:class:`BadRecord` (its place and the reason) instead of stopping the read; a file
that cannot be read at all (not UTF-8, a broken CSV header) still stops it.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsearch.errors import (
    InvalidArgumentError,
    InvalidIdError,
    InvalidInputError,
    InvalidTextError,
)
from simsearch.types import JSONObject

__all__ = ["BadRecord", "Record", "read_records", "typed_cell"]

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    metadata: JSONObject
    #: ``file:line`` of the record (``file`` alone for one file of a folder), for messages.
    where: str = ""
    #: Its line in the file (where the record starts); ``None`` for one file of a folder.
    line: int | None = None


@dataclass(frozen=True)
class BadRecord:
    """A record that was left out, and why (the message names its place)."""

    where: str
    message: str


#: Integers without a leading zero (``007`` is a code, not a number) and decimal numbers.
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(
    r"[+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|(0|[1-9][0-9]*)[eE][+-]?[0-9]+)"
)
_INT64 = (-(2**63), 2**63 - 1)


def typed_cell(cell: str) -> Any:
    """A CSV cell as the JSON value it reads as: an integer, a decimal number, a boolean,
    ``None`` for an empty cell (the field is then left out), else the text itself.

    >>> [typed_cell(c) for c in ["2012", "-3.5", "1e3", "TRUE", "false", "", "007", "nan"]]
    [2012, -3.5, 1000.0, True, False, None, '007', 'nan']
    """
    text = cell.strip()
    if not text:
        return None
    if _INT.fullmatch(text):
        value = int(text)
        return value if _INT64[0] <= value <= _INT64[1] else cell
    if _FLOAT.fullmatch(text):
        number = float(text)
        return number if math.isfinite(number) else cell
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return cell


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, float):
        return f"the number {value}"
    return type(value).__name__


def _text_part(value: Any, field: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidTextError(f"{where}: text field {field!r} is {value}, not a text")
        return str(value)
    raise InvalidTextError(
        f"{where}: text field {field!r} is {_kind(value)}; a text field must be a string "
        "or a number"
    )


def _id_of(value: Any, field: str, where: str) -> str:
    if value is None or value == "":
        raise InvalidIdError(f"{where}: the record has no id field {field!r}")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidIdError(
        f"{where}: id field {field!r} is {_kind(value)}; an id must be a string or an integer"
    )


def _from_mapping(
    row: dict[str, Any],
    where: str,
    id_field: str | None,
    text_fields: Sequence[str],
    n: int,
    infer: bool = False,
) -> Record:
    missing = [f for f in text_fields if f not in row]
    if len(missing) == len(text_fields):
        raise InvalidInputError(f"{where}: no text field {', '.join(text_fields)!s} in the record")
    parts = (_text_part(row.get(f), f, where) for f in text_fields)
    text = " ".join(p for p in parts if p is not None).strip()
    rid = _id_of(row.get(id_field), id_field, where) if id_field is not None else str(n)
    skip = {id_field, *text_fields}
    metadata = {k: v for k, v in row.items() if k not in skip}
    if infer:
        metadata = {k: t for k, v in metadata.items() if (t := typed_cell(v)) is not None}
    return Record(rid, text, metadata, where, n)


def _not_utf8(path: Path) -> InvalidInputError:
    """The error for a file that failed to decode, naming the first bad line.

    Only called once decoding failed: the text reader decodes ahead in chunks, so
    the line it had reached is not the bad one; a second pass over the bytes finds it.
    """
    offset = 0
    with path.open("rb") as fh:
        # A multi-byte UTF-8 sequence never holds the byte 0x0a, so each line decodes alone.
        for lineno, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return InvalidInputError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                    f"offset {offset + exc.start} of the file)"
                )
            offset += len(raw)
    return InvalidInputError(f"{path}: not valid UTF-8")


def _text_lines(path: Path, newline: str | None) -> Iterator[str]:
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first field's name.
    with path.open(encoding="utf-8-sig", newline=newline) as fh:
        try:
            yield from fh
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _jsonl_record(
    line: str, where: str, id_field: str | None, text_fields: Sequence[str], lineno: int
) -> Record:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InvalidInputError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidInputError(f"{where}: the JSON is nested too deeply") from None
    if not isinstance(row, dict):
        raise InvalidInputError(f"{where}: each line must be a JSON object")
    if lineno == 1 and row.get("simsearch") == "export":
        raise InvalidArgumentError(
            f"{where}: this is a simsearch export: load it with `simsearch import "
            f"{str(where).rsplit(':', 1)[0]} --into COL`, which keeps its vectors, metadata "
            "and config (ingest would embed the texts again)"
        )
    return _from_mapping(row, where, id_field, text_fields, lineno)


def _jsonl(
    path: Path, id_field: str | None, text_fields: Sequence[str], skip_bad: bool
) -> Iterator[Record | BadRecord]:
    for lineno, line in enumerate(_text_lines(path, None), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield _jsonl_record(line, where, id_field, text_fields, lineno)
        except InvalidArgumentError:
            raise  # the whole file is of another kind
        except InvalidInputError as exc:
            if not skip_bad:
                raise
            yield BadRecord(where, str(exc))


def _csv(
    path: Path, id_field: str | None, text_fields: Sequence[str], skip_bad: bool, infer: bool
) -> Iterator[Record | BadRecord]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(_text_lines(path, ""), delimiter=delimiter)
    header: list[str] | None = None
    header_line = 0
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInputError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None
        # line_num is the line a row ends on; a quoted field can span several.
        start, end = end + 1, reader.line_num
        if not any(field.strip() for field in row):
            continue
        if header is None:
            header, header_line = row, start
            seen: set[str] = set()
            for name in header:
                if name in seen:
                    raise InvalidInputError(f"{path}:{start}: column {name!r} appears twice")
                seen.add(name)
            continue
        try:
            if len(row) != len(header):
                raise InvalidInputError(
                    f"{path}:{start}: the row has {len(row)} fields, the header (line "
                    f"{header_line}) has {len(header)}"
                )
            yield _from_mapping(
                dict(zip(header, row, strict=True)), f"{path}:{start}", id_field, text_fields,
                start, infer,
            )  # fmt: skip
        except InvalidInputError as exc:
            if not skip_bad:
                raise
            yield BadRecord(f"{path}:{start}", str(exc))


def _lines(path: Path) -> Iterator[Record]:
    for lineno, line in enumerate(_text_lines(path, None), 1):
        if line.strip():
            yield Record(
                f"{path.name}:{lineno}",
                line.strip(),
                {"source": path.name},
                f"{path}:{lineno}",
                lineno,
            )


def _folder(root: Path) -> Iterator[Record]:
    for file in sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES):
        rel = file.relative_to(root).as_posix()
        try:
            text = file.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError:
            raise _not_utf8(file) from None
        if text:
            yield Record(rel, text, {"path": rel}, str(file))


def read_records(
    source: str | Path,
    *,
    id_field: str | None = "id",
    text_fields: Sequence[str] = ("text",),
    skip_bad: bool = False,
    infer: bool = True,
) -> Iterator[Record | BadRecord]:
    """Records from ``source``, chosen by its suffix (``.jsonl``/``.json``,
    ``.csv``/``.tsv``, ``.txt``/``.md`` one item per line) or a folder (one item
    per ``.txt``/``.md`` file, its relative path as id).

    A record the reader cannot make sense of raises
    :class:`~simsearch.InvalidInputError` naming ``file:line`` (with ``skip_bad``, comes
    out as a :class:`BadRecord`); the records are not checked against a collection's
    rules here (see :mod:`simsearch.ingest`). ``infer`` types CSV/TSV metadata cells.
    """
    path = Path(source)
    if path.is_dir():
        return _folder(path)
    if not path.is_file():
        raise InvalidArgumentError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl(path, id_field, text_fields, skip_bad)
    if suffix in (".csv", ".tsv"):
        return _csv(path, id_field, text_fields, skip_bad, infer)
    if suffix in TEXT_SUFFIXES:
        return _lines(path)
    raise InvalidArgumentError(
        f"cannot read {path.name}: use .jsonl, .csv, .tsv, .txt, .md or a folder"
    )
