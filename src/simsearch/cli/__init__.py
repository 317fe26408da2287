"""The ``simsearch`` command line: ingest, search, info, delete, export, eval, serve, ...

Errors print one line on stderr and exit with status 1; no traceback. Each module of this
package holds one group of commands and registers them on the shared typer ``app``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

# Imported for their commands, which register themselves on ``app``.
from simsearch.cli import data, look, quality, serve  # noqa: F401
from simsearch.cli.common import app, show_warning

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``simsearch`` command."""
    # A warning (a text cut at the model's token limit, an index rebuilt) reads as one line.
    warnings.showwarning = show_warning
    command: Callable[..., Any] = app
    command(args=argv, prog_name="simsearch")
