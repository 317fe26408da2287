"""Commands that put items in and take them out: ingest, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from simsearch.cli.common import CollectionArg, app, err, errors, out, parse_where
from simsearch.collection import Collection
from simsearch.config import index_from_name
from simsearch.errors import InvalidArgumentError
from simsearch.ingest import ingest as run_ingest


@app.command()
def ingest(
    source: Annotated[Path, typer.Argument(help="JSONL, CSV/TSV, .txt/.md, or a folder.")],
    into: Annotated[Path, typer.Option("--into", help="Collection folder (created if missing).")],
    id_field: Annotated[str, typer.Option(help="Field holding each record's id.")] = "id",
    text_field: Annotated[
        list[str], typer.Option(help="Field(s) to embed; repeat to join several.")
    ] = ["text"],  # noqa: B006 - typer reads list defaults
    encoder: Annotated[
        str | None, typer.Option(help="Encoder name (default: saved/MiniLM).")
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="cosine, dot or l2 for a new collection.")
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            help="Index kind: flat (exact), hnsw (graph), hnsw-int8 or hnsw-binary (graph over "
            "compressed codes, rescored) or ivfpq (compressed inverted file, rescored)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Items per transaction.")] = 256,
    upsert: Annotated[bool, typer.Option(help="Replace items whose id already exists.")] = False,
) -> None:
    """Embed the texts of SOURCE and store them, with every other field as metadata.

    Every record is checked first; a bad one is named by file and line, and nothing is written.
    """
    with errors():
        kind = index_from_name(index) if index is not None else None
        stored, held = run_ingest(
            source,
            into,
            id_field=id_field,
            text_fields=text_field,
            encoder=encoder,
            metric=metric,
            index=kind,
            batch_size=batch_size,
            upsert=upsert,
            note=lambda line: err.print(
                f"note: {line}", markup=False, highlight=False, soft_wrap=True
            ),
        )
        err.print(f"{stored} items stored; the collection holds {held}.")


@app.command()
def delete(
    collection: CollectionArg,
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to delete.")] = None,
    where: Annotated[
        str | None, typer.Option(help="Delete the items matching this filter.")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete every item (the collection stays).")
    ] = False,
) -> None:
    """Delete items by id and/or filter, or --all; prints how many were deleted."""
    with errors(), Collection.open(collection, create=False) as col:
        try:
            n = col.delete(ids or None, where=parse_where(where), all=everything)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(str(exc).replace("all=True", "--all")) from None
        out.print(f"{n} deleted")
