"""Commands that read a collection: search, info, check."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from simsearch.check import check_collection
from simsearch.cli.common import (
    CollectionArg,
    JsonOpt,
    app,
    errors,
    human_size,
    item_table,
    out,
    parse_where,
)
from simsearch.collection import Collection

#: A hit's text is shown up to this many characters (a table row per hit, not a page).
TEXT_SHOWN = 500


@app.command()
def search(
    collection: CollectionArg,
    query: Annotated[str, typer.Argument(help="Text to search for.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="How many hits.")] = 10,
    where: Annotated[
        str | None, typer.Option(help='Metadata filter as JSON, e.g. \'{"lang": "en"}\'.')
    ] = None,
    min_relevance: Annotated[
        float | None,
        typer.Option(help="Keep hits with at least this calibrated relevance (0-1)."),
    ] = None,
    offset: Annotated[
        int, typer.Option(min=0, help="Skip the best OFFSET hits (the next page).")
    ] = 0,
    mode: Annotated[
        str, typer.Option(help="dense (vectors), lexical (BM25 of texts) or hybrid (both).")
    ] = "dense",
    fusion: Annotated[str, typer.Option(help="Hybrid fusion: convex or rrf.")] = "convex",
    contains: Annotated[
        str | None, typer.Option(help="Only items whose text holds these words.")
    ] = None,
    not_contains: Annotated[
        str | None, typer.Option(help="Only items whose text does not hold these words.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the K items most similar to QUERY."""
    asked = {"$contains": contains, "$not_contains": not_contains}
    where_text = {op: v for op, v in asked.items() if v is not None} or None
    with errors(), Collection.open(collection, create=False) as col:
        hits = col.search(
            query, k=k, where=parse_where(where), min_relevance=min_relevance, offset=offset,
            mode=mode, fusion=fusion, where_text=where_text,
        )[0]  # fmt: skip
        if as_json:
            print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
            return
        calibrated = bool(hits) and hits[0].relevance is not None
        table = item_table(f"{query!r} in {collection}", score=True, relevance=calibrated)
        for rank, h in enumerate(hits, offset + 1):
            text = (h.text or "")[:TEXT_SHOWN] + (
                "…" if h.text and len(h.text) > TEXT_SHOWN else ""
            )
            meta = json.dumps(h.metadata, ensure_ascii=False)
            relevance = [f"{h.relevance:.3f}"] if calibrated else []
            table.add_row(str(rank), f"{h.score:.4f}", *relevance, h.id, text, meta)
        out.print(table)


def info_table(data: dict[str, Any]) -> Table:
    """A collection's summary for a person: sizes in KiB/MiB, no internal counters."""
    table = Table(show_header=False)
    encoder = data.get("encoder")
    rows = {
        "path": data["path"],
        "items": f"{data['count']:,}",
        "metric": data["metric"],
        "dimension": str(data["dim"] or "- (set by the first vectors)"),
        "encoder": f"{encoder['name']} ({encoder['version']})"
        if encoder
        else "none (vectors only)",
        "index": data["index"],
        "size on disk": human_size(int(data["size_bytes"])),
    }
    migration = data.get("migration")
    if migration:
        rows["model upgrade"] = (
            f"to {migration['to'] or 'your vectors'} ({migration['method']}), "
            f"{migration['remaining']:,} items still to re-embed"
        )
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def fields_table(fields: list[dict[str, Any]]) -> Table:
    """The metadata fields the collection's items hold: how many items hold each, and
    of which JSON types (from ``info()["fields"]``)."""
    table = Table(title="metadata fields", title_justify="left")
    table.add_column("field", overflow="fold")
    table.add_column("items", justify="right")
    table.add_column("types")
    table.add_column("index")
    for entry in fields:
        table.add_row(
            str(entry["field"]),
            _shown(entry["count"]),
            _shown(entry["types"]),
            _shown(entry.get("indexed")),
        )
    return table


def _shown(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(_shown, value))
    return "" if value is None else str(value)


@app.command()
def info(collection: CollectionArg, as_json: JsonOpt = False) -> None:
    """Describe a collection: items, metric, dimension, encoder, index, size, and its
    metadata fields (--json gives every figure, internal ones too)."""
    with errors(), Collection.open(collection, create=False) as col:
        data = col.info()
        if as_json:
            print(json.dumps(data))
            return
        out.print(info_table(data))
        fields = data.get("fields")
        if fields:
            out.print(fields_table(fields))


@app.command()
def check(
    collection: CollectionArg,
    repair: Annotated[
        bool,
        typer.Option(help="Mend derived data: the sequence counter, the saved index."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check COLLECTION's data: SQLite's integrity check, then simsearch's own (config,
    vectors, metadata, sequence counter, saved index). Exits 1 while problems remain."""
    with errors():
        report = check_collection(collection, repair=repair)
    if as_json:
        print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, ensure_ascii=False))
    else:
        for line in report.repaired:
            out.print(f"repaired: {line}", highlight=False)
        for line in report.problems:
            out.print(f"[bold red]problem:[/] {line}", highlight=False, markup=True)
        if report.ok:
            out.print(f"{collection}: {report.items} items, no problems found", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
