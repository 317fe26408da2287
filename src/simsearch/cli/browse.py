"""Commands that browse and edit items in place: list, get, count, update."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from simsearch.browse import list_collections
from simsearch.cli.common import (
    CollectionArg,
    JsonOpt,
    app,
    err,
    errors,
    item_table,
    out,
    parse_where,
)
from simsearch.collection import Collection
from simsearch.errors import InvalidArgumentError, SimsearchError

WhereOpt = Annotated[
    str | None, typer.Option(help='Metadata filter as JSON, e.g. \'{"lang": "en"}\'.')
]


@app.command("list")
def list_(
    root: Annotated[Path, typer.Argument(help="A folder holding collections.")] = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """List the collections in ROOT with their size, metric, dimension and index."""
    with errors():
        rows: list[dict[str, Any]] = []
        for name in list_collections(root):
            try:
                with Collection.open(root / name, create=False) as col:
                    data = col.info()
                rows.append({"name": name, **{k: data[k] for k in ("count", "metric", "dim",
                                                                   "index")}})  # fmt: skip
            except SimsearchError as exc:  # one damaged collection does not hide the rest
                rows.append({"name": name, "error": str(exc)})
        if as_json:
            print(json.dumps(rows, ensure_ascii=False))
            return
        if not rows:
            err.print(f"no collections in {root}", highlight=False)
            return
        table = Table()
        for column in ("name", "items", "metric", "dim", "index"):
            table.add_column(column, justify="right" if column in ("items", "dim") else "left")
        for row in rows:
            if "error" in row:
                table.add_row(row["name"], f"[red]{row['error']}[/]", "", "", "")
            else:
                table.add_row(row["name"], f"{row['count']:,}", row["metric"],
                              str(row["dim"] or "-"), row["index"])  # fmt: skip
        out.print(table)


@app.command()
def get(
    collection: CollectionArg,
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to show (default: browse).")] = None,
    where: WhereOpt = None,
    limit: Annotated[
        int | None, typer.Option(min=0, help="At most this many (default 20 when browsing).")
    ] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many first.")] = 0,
    vectors: Annotated[bool, typer.Option("--vectors", help="Show the vectors too.")] = False,
    skip_missing: Annotated[
        bool, typer.Option("--skip-missing", help="Leave out ids that do not exist.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines for machines.")] = False,
) -> None:
    """Show items by id, or browse them in insertion order (with --where, those matching),
    a page at a time with --offset and --limit."""
    with errors(), Collection.open(collection, create=False) as col:
        if not ids and limit is None:
            limit = 20
        items = col.get(
            ids or None,
            where=parse_where(where),
            limit=limit,
            offset=offset,
            include=("metadata", "text", "vector") if vectors else ("metadata", "text"),
            missing="skip" if skip_missing else "error",
        )
        if as_json:
            for i in items:
                row: dict[str, Any] = {"id": i.id, "text": i.text, "metadata": i.metadata}
                if i.vector is not None:
                    row["vector"] = i.vector.tolist()
                print(json.dumps(row, ensure_ascii=False))
            return
        table = item_table(f"{collection}", vectors=vectors)
        for n, i in enumerate(items, offset + 1):
            table.add_row(
                str(n), i.id, i.text or "", json.dumps(i.metadata, ensure_ascii=False),
                *([json.dumps([round(x, 4) for x in i.vector.tolist()])] if vectors
                  and i.vector is not None else []),
            )  # fmt: skip
        out.print(table)
        if not ids:
            total = col.count(parse_where(where))
            shown = f"{offset + 1}-{offset + len(items)}" if items else "none"
            err.print(f"showing {shown} of {total:,}; --offset and --limit page", highlight=False)


@app.command()
def count(collection: CollectionArg, where: WhereOpt = None) -> None:
    """Print how many items COLLECTION holds (with --where, how many match)."""
    with errors(), Collection.open(collection, create=False) as col:
        print(col.count(parse_where(where)))


@app.command()
def update(
    collection: CollectionArg,
    ids: Annotated[list[str], typer.Argument(help="Ids of the items to change.")],
    set_: Annotated[
        str | None,
        typer.Option("--set", help="Metadata as a JSON object, merged into each item's."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the metadata instead of merging it.")
    ] = False,
    text: Annotated[
        list[str] | None,
        typer.Option(
            "--text",
            help="A new text per id (repeat, in the ids' order); embedded again when the "
            "collection has an encoder.",
        ),
    ] = None,
) -> None:
    """Change only the metadata and/or texts of existing items, in one transaction; a
    missing id changes nothing."""
    with errors():
        patch = None
        if set_ is not None:
            try:
                patch = json.loads(set_)
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(f"--set is not valid JSON: {exc.msg}") from None
            if not isinstance(patch, dict):
                raise InvalidArgumentError('--set must be a JSON object, e.g. \'{"lang": "en"}\'')
        if replace and patch is None:
            raise InvalidArgumentError("--replace replaces the metadata with --set: give --set")
        if patch is None and not text:
            raise InvalidArgumentError("give --set METADATA, --text TEXT, or both")
        if text and len(text) != len(ids):
            raise InvalidArgumentError(
                f"got {len(ids)} ids but {len(text)} --text values (one per id)"
            )
        with Collection.open(collection, create=False) as col:
            n = col.update(
                ids,
                metadata=None if patch is None else [patch] * len(ids),
                merge=not replace,
                texts=text or None,
            )
        out.print(f"{n} updated", highlight=False)
