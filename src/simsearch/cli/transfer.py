"""Commands that move whole collections: export, import, backup."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from simsearch.cli.common import CollectionArg, app, err, errors
from simsearch.collection import Collection
from simsearch.transfer import EXPORT_FORMATS

FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help=f"{' or '.join(EXPORT_FORMATS)} (default: from the file's suffix, else jsonl).",
    ),
]


@app.command()
def export(
    collection: CollectionArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout, JSONL).")
    ] = None,
    format: FormatOpt = None,
    vectors: Annotated[
        bool, typer.Option(help="Include the vectors (an import needs them).")
    ] = True,
) -> None:
    """Write COLLECTION whole, as `simsearch import` reads it back: a header line with the
    config and saved calibration, then one JSON line per item (id, text, metadata, vector);
    or Parquet (`--format parquet`, or an output file ending in .parquet)."""
    with errors(), Collection.open(collection, create=False) as col:
        n = col.export(output if output is not None else sys.stdout, format=format,
                       vectors=vectors)  # fmt: skip
        if output is not None:
            err.print(f"{n} items exported to {output}", highlight=False)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A file `simsearch export` wrote (- : stdin).")],
    into: Annotated[Path, typer.Option("--into", help="The new collection's folder.")],
    format: FormatOpt = None,
) -> None:
    """Create a collection from an export, exactly as it was: ids, vectors, texts,
    metadata, config and calibration; nothing is embedded again. The whole file is checked
    before anything is written."""
    with errors(), Collection.import_(source, into, format=format) as col:
        err.print(f"{len(col)} items imported into {into}", highlight=False)


@app.command()
def backup(
    collection: CollectionArg,
    dest: Annotated[Path, typer.Argument(help="A new folder for the copy.")],
) -> None:
    """Copy COLLECTION as of one moment into DEST while writers go on (SQLite's online
    backup); DEST opens as a collection of its own."""
    with errors(), Collection.open(collection, create=False) as col:
        col.backup(dest)
        err.print(f"backed up {collection} to {dest}", highlight=False)
