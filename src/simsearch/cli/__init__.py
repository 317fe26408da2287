"""The ``simsearch`` command line: ingest, search, info, delete, export, eval, serve, ...

Errors print one line on stderr and exit with status 1; no traceback. Each module of this
package holds one group of commands and registers them on the shared typer ``app``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer

# Imported for their commands, which register themselves on ``app``.
from simsearch.cli import browse, data, fields, look, quality, serve, transfer  # noqa: F401
from simsearch.cli.common import app, out, show_warning

__all__ = ["app", "main"]


def _version(show: bool) -> None:
    if show:
        import simsearch

        out.print(f"simsearch {simsearch.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Embedding similarity search: build durable collections and search them."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``simsearch`` command."""
    # A warning (a text cut at the model's token limit, an index rebuilt) reads as one line.
    warnings.showwarning = show_warning
    command: Callable[..., Any] = app
    command(args=argv, prog_name="simsearch")
