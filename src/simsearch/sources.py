"""Read records to ingest from JSONL, CSV/TSV, plain text or a folder of text files.

Each record becomes ``(id, text, metadata)``: the id and text come from the
named fields, every other field goes into metadata.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsearch.errors import InvalidArgumentError, InvalidInputError
from simsearch.types import JSONObject

__all__ = ["Record", "read_records"]

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Record:
    id: str
    text: str
    metadata: JSONObject


def _from_mapping(
    row: dict[str, Any], where: str, id_field: str | None, text_fields: Sequence[str], n: int
) -> Record:
    missing = [f for f in text_fields if f not in row]
    if len(missing) == len(text_fields):
        raise InvalidInputError(f"{where}: no text field {', '.join(text_fields)!s} in the record")
    text = " ".join(str(row[f]) for f in text_fields if row.get(f) not in (None, "")).strip()
    if id_field is not None:
        if row.get(id_field) in (None, ""):
            raise InvalidInputError(f"{where}: the record has no id field {id_field!r}")
        rid = str(row[id_field])
    else:
        rid = str(n)
    skip = {id_field, *text_fields}
    metadata = {k: v for k, v in row.items() if k not in skip}
    return Record(rid, text, metadata)


def _jsonl(path: Path, id_field: str | None, text_fields: Sequence[str]) -> Iterator[Record]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}:{lineno}: each line must be a JSON object")
            yield _from_mapping(row, f"{path}:{lineno}", id_field, text_fields, lineno)


def _csv(path: Path, id_field: str | None, text_fields: Sequence[str]) -> Iterator[Record]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh, delimiter=delimiter), 2):
            yield _from_mapping(dict(row), f"{path}:{n}", id_field, text_fields, n)


def _lines(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                yield Record(f"{path.name}:{lineno}", line.strip(), {"source": path.name})


def _folder(root: Path) -> Iterator[Record]:
    for file in sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES):
        rel = file.relative_to(root).as_posix()
        text = file.read_text(encoding="utf-8").strip()
        if text:
            yield Record(rel, text, {"path": rel})


def read_records(
    source: str | Path, *, id_field: str | None = "id", text_fields: Sequence[str] = ("text",)
) -> Iterator[Record]:
    """Records from ``source``, chosen by its suffix (``.jsonl``/``.json``,
    ``.csv``/``.tsv``, ``.txt``/``.md`` one item per line) or a folder (one item
    per ``.txt``/``.md`` file, its relative path as id)."""
    path = Path(source)
    if path.is_dir():
        return _folder(path)
    if not path.is_file():
        raise InvalidArgumentError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _jsonl(path, id_field, text_fields)
    if suffix in (".csv", ".tsv"):
        return _csv(path, id_field, text_fields)
    if suffix in TEXT_SUFFIXES:
        return _lines(path)
    raise InvalidArgumentError(
        f"cannot read {path.name}: use .jsonl, .csv, .tsv, .txt, .md or a folder"
    )
