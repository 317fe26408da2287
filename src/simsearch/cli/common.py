"""What every ``simsearch`` command shares: the typer app, the consoles, error printing."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from simsearch.errors import InvalidArgumentError, SimsearchError

app = typer.Typer(
    name="simsearch",
    help="Embedding similarity search: build durable collections and search them.",
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Output(Console):
    """Standard output for tables and lines. A reader that stopped early
    (``simsearch info COL | head -1``) got what it wanted: rich would exit with status 1
    there, the command ends quietly with 0 instead."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        quiet_stdout()
        raise SystemExit(0)


out = _Output()
err = Console(stderr=True)

T = TypeVar("T")

CollectionArg = Annotated[Path, typer.Argument(help="Folder of the collection.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines.")]


def quiet_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush at exit does not
    fail again on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


@contextmanager
def errors() -> Iterator[None]:
    """Print a simsearch or OS error as one line on stderr and exit 1; a reader that
    stopped early (``simsearch export COL | head``) ends the command quietly with 0."""
    try:
        yield
    except BrokenPipeError:
        quiet_stdout()
        raise typer.Exit(0) from None
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


def item_table(title: str, *, score: bool = False, relevance: bool = False,
               vectors: bool = False) -> Table:  # fmt: skip
    """A table of items (or hits) that uses the terminal's whole width: long texts and
    metadata wrap instead of being cut."""
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("#", justify="right")
    if score:
        table.add_column("score")
    if relevance:
        table.add_column("relevance")
    table.add_column("id", overflow="fold")
    table.add_column("text", overflow="fold", ratio=3)
    table.add_column("metadata", overflow="fold", ratio=2)
    if vectors:
        table.add_column("vector", overflow="fold", ratio=2)
    return table


def interactive() -> bool:
    """Whether a person is at the keyboard (standard input and error are a terminal)."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` on a terminal unless ``yes``; a "no" ends the command with 1 and
    changes nothing. Without a terminal (a script, a pipe) nobody can answer: go on."""
    if yes or not interactive():
        return
    if not typer.confirm(question, default=False, err=True):
        err.print("nothing changed", highlight=False)
        raise typer.Exit(1)


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def human_size(n: int) -> str:
    """A byte count as a person reads it.

    >>> [human_size(n) for n in (512, 1536, 5 * 1024**3)]
    ['512 B', '1.5 KiB', '5.0 GiB']
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
