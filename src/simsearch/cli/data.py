"""Commands that put items in and take them out: create, ingest, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from simsearch.cli.common import (
    CollectionArg,
    YesOpt,
    app,
    confirm,
    err,
    errors,
    out,
    parse_where,
)
from simsearch.collection import Collection
from simsearch.config import index_from_name
from simsearch.distributed.placement import MANIFEST
from simsearch.errors import CollectionExistsError, InvalidArgumentError
from simsearch.filters import compile_filter
from simsearch.ingest import ingest as run_ingest
from simsearch.store import DB_FILENAME


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
    upsert: Annotated[
        bool, typer.Option("--upsert", help="Replace the items whose id already exists.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Leave out the records whose id already exists."),
    ] = False,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="fail: a bad record stops the ingest before anything is written; skip: bad "
            "records are left out, counted and the first few shown.",
        ),
    ] = "fail",
    no_infer: Annotated[
        bool,
        typer.Option(
            "--no-infer",
            help="Keep every CSV/TSV value a string (by default numbers and true/false are "
            "typed, and an empty cell is a missing field).",
        ),
    ] = False,
    chunk_tokens: Annotated[
        int | None,
        typer.Option(
            "--chunk-tokens",
            min=1,
            help="Split each text into pieces of at most N of the encoder's tokens (254 "
            "fill MiniLM's 256): items ID#0, ID#1, ... with metadata source_id and chunk.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="Ingest into a sharded collection of N shards on Ray (INTO is its root, a "
            "folder every node reaches); texts are embedded by a pool of Ray actors.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray", help="Address of the Ray cluster for a sharded ingest (default: a local one)."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Embedding actors of a sharded ingest (default: one per CPU)."
        ),
    ] = None,
) -> None:
    """Embed the texts of SOURCE and store them, with every other field as metadata.

    Every record is checked first; a bad one is named by file and line, and nothing is
    written (or, with --on-error skip, it is left out and reported). At the end a report
    says exactly what was stored and what was left out. With --shards (or --ray, or INTO
    the root of a sharded collection) the items go to a sharded collection on Ray.
    """
    with errors():
        kind = index_from_name(index) if index is not None else None

        def note(line: str) -> None:
            err.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)

        choices: dict[str, Any] = dict(
            id_field=id_field, text_fields=text_field, encoder=encoder, metric=metric,
            index=kind, batch_size=batch_size, upsert=upsert, skip_existing=skip_existing,
            on_error=on_error, infer=not no_infer, chunk_tokens=chunk_tokens, note=note,
        )  # fmt: skip
        if shards is not None or ray_address is not None or (into / MANIFEST).is_file():
            from simsearch.distributed.ingest import ingest_sharded

            report = ingest_sharded(
                source, into, shards=shards, ray_address=ray_address, workers=workers,
                **choices,
            )  # fmt: skip
        else:
            report = run_ingest(source, into, **choices)
        for line in report.lines():
            err.print(line, markup=False, highlight=False, soft_wrap=True)


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
    yes: YesOpt = False,
) -> None:
    """Delete items by id and/or filter, or --all; prints how many were deleted. On a
    terminal, deleting by filter or --all asks first (--yes does not)."""
    with errors(), Collection.open(collection, create=False) as col:
        filter_ = parse_where(where)
        if everything and not ids and filter_ is None:
            confirm(f"Delete every item ({len(col):,}) of {collection}?", yes)
        elif (
            filter_ is not None
            and not everything
            and (ids or not compile_filter(filter_).matches_all)
        ):
            n = len(col.get(ids or None, where=filter_, include=(), missing="skip"))
            confirm(f"Delete {n:,} items matching {where} from {collection}?", yes)
        try:
            n = col.delete(ids or None, where=filter_, all=everything)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(str(exc).replace("all=True", "--all")) from None
        out.print(f"{n} deleted")


@app.command()
def create(
    collection: Annotated[Path, typer.Argument(help="Folder of the new collection.")],
    metric: Annotated[str, typer.Option(help="cosine, dot or l2.")] = "cosine",
    dim: Annotated[
        int | None, typer.Option(min=1, help="Vector dimension (default: the first vectors').")
    ] = None,
    encoder: Annotated[
        str | None, typer.Option(help="Encoder for its texts (default: MiniLM, when texts come).")
    ] = None,
    index: Annotated[
        str, typer.Option(help="flat, hnsw, hnsw-int8, hnsw-binary or ivfpq.")
    ] = "flat",
) -> None:
    """Create an empty collection (ingest and import create theirs themselves; no other
    command creates one)."""
    with errors():
        if (collection / DB_FILENAME).exists():
            raise CollectionExistsError(f"{collection} holds a collection already")
        kind = index_from_name(index)
        with Collection.open(
            collection, metric=metric, dim=dim, encoder=encoder, index=kind
        ) as col:
            out.print(f"created {col.path} ({col.config.metric.value}, {index})", highlight=False)
