"""Commands for payload indexes and plans: index-field, drop-field-index, explain."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from simsearch.cli.common import CollectionArg, JsonOpt, app, errors, out, parse_where
from simsearch.collection import Collection
from simsearch.config import FIELD_KINDS

FieldArg = Annotated[str, typer.Argument(help="a metadata field, as filters name it (a.b)")]


@app.command("index-field")
def index_field(
    collection: CollectionArg,
    field: FieldArg,
    kind: Annotated[str, typer.Option("--kind", help=f"one of: {', '.join(FIELD_KINDS)}")],
    window: Annotated[
        bool, typer.Option("--window", help="also the window structure (numeric kinds)")
    ] = False,
) -> None:
    """Index a metadata field so filters on it are answered without scanning."""
    with errors(), Collection.open(collection, create=False) as col:
        changed = col.index_field(field, kind, window=window)
        built = next(f for f in col.info()["field_indexes"] if f["field"] == field)
    size = "" if built["bytes"] is None else f", {built['bytes'] / 2**20:.1f} MiB"
    verb = "indexed" if changed else "was already indexed"
    out.print(f"{field} {verb} ({built['kind']}{size})", highlight=False)


@app.command("drop-field-index")
def drop_field_index(collection: CollectionArg, field: FieldArg) -> None:
    """Drop a field's payload index (filters on it then scan, with the same results)."""
    with errors(), Collection.open(collection, create=False) as col:
        changed = col.drop_field_index(field)
    out.print(f"{field}: {'index dropped' if changed else 'had no index'}", highlight=False)


@app.command()
def explain(
    collection: CollectionArg,
    where: Annotated[str | None, typer.Option("--where", help="a JSON filter")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="as search --exact would")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Say how a search with this filter runs and why: the rows the filter allows, where
    they came from (payload index, scan, cache), and exact or graph search."""
    with errors(), Collection.open(collection, create=False) as col:
        plan = col.explain(where=parse_where(where), exact=exact)
    if as_json:
        print(json.dumps(plan))
        return
    out.print(f"{plan['plan']} search: {plan['reason']}", highlight=False)
    flt = plan.get("filter")
    if flt:
        share = "" if flt["share"] is None else f" ({flt['share']:.1%} of {plan['live']:,})"
        out.print(f"filter allows {flt['allowed']:,} items{share}, from {flt['from']}")
