"""What every ``simsearch`` command shares: the typer app, the consoles, error printing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from simsearch.errors import InvalidArgumentError, SimsearchError

app = typer.Typer(
    name="simsearch",
    help="Embedding similarity search: build durable collections and search them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

T = TypeVar("T")

CollectionArg = Annotated[Path, typer.Argument(help="Folder of the collection.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


@contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except SimsearchError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(
            f"[bold red]error:[/] {exc.strerror or exc}: {exc.filename or ''}", highlight=False
        )
        raise typer.Exit(1) from None


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Print a warning as one ``warning:`` line (``warnings.showwarning`` for the CLI)."""
    err.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def parse_where(where: str | None) -> Any:
    if where is None:
        return None
    try:
        return json.loads(where)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--where is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidArgumentError("--where is nested too deeply") from None


def batched(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
