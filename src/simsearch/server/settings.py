"""Server settings, fixed when the app is created."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simsearch.errors import InvalidArgumentError
from simsearch.server.auth import KeyRing

__all__ = ["ServerSettings", "ShardedEntry", "load_sharded"]


@dataclass(frozen=True)
class ShardedEntry:
    """A sharded collection the server serves under ``name``: the root folder of a
    :class:`~simsearch.ShardedCollection` (reachable by every Ray node) and the Ray
    cluster its shard actors run on (``None``: a new local one)."""

    name: str
    root: Path
    ray_address: str | None = None
    timeout: float = 60.0


def load_sharded(path: Path) -> tuple[ShardedEntry, ...]:
    """The entries of a JSON file ``{"sharded": [{"name", "root", "ray_address",
    "timeout"}, ...]}``; a relative root is taken from the file's folder."""
    try:
        data: Any = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(
            f"cannot read the sharded collections of {path}: {exc}"
        ) from None
    rows = data.get("sharded") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise InvalidArgumentError(f"{path} must hold an object with a list 'sharded'")
    known = {"name", "root", "ray_address", "timeout"}
    entries = []
    for at, row in enumerate(rows):
        where = f"{path}: sharded[{at}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise InvalidArgumentError(f"{where} must be an object with a string 'name'")
        if not isinstance(row.get("root"), str):
            raise InvalidArgumentError(f"{where} needs 'root', the sharded collection's folder")
        unknown = sorted(set(row) - known)
        if unknown:
            raise InvalidArgumentError(
                f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        address, timeout = row.get("ray_address"), row.get("timeout", 60.0)
        if address is not None and not isinstance(address, str):
            raise InvalidArgumentError(f"{where}: 'ray_address' must be a string")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidArgumentError(f"{where}: 'timeout' must be a positive number")
        root = Path(row["root"])
        entries.append(ShardedEntry(row["name"], path.parent / root, address, float(timeout)))
    return tuple(entries)


@dataclass(frozen=True)
class ServerSettings:
    """What one server instance serves and how.

    The limits bound the work and memory one request can cost; a request over any of
    them is refused with 413 ``payload_too_large`` before simsearch does the work.

    Attributes:
        data_dir: folder whose subfolders are the collections.
        keys: the API keys; ``None`` serves without authentication (loopback only,
            unless the CLI is told ``--insecure``).
        max_body_bytes: larger request bodies are refused with 413, chunked or not.
        max_queries: the most queries (texts or vectors) in one search request.
        max_results: the most hits one search request may ask for (queries times ``k``).
        max_texts: the most texts one request may give to embed (search queries, or the
            ``texts`` of add and upsert).
        max_text_chars: the most characters, all texts together, one request may give to
            embed.
        max_response_bytes: the largest answer (about) a search or get may build; a request
            whose hits would hold more is refused with 413 before the answer is built.
        access_log: log one line per request (method, path, status, time) to the
            ``simsearch.access`` logger; ``simsearch serve`` turns it on.
        sharded: sharded collections served by name beside the folders of ``data_dir``
            (Ray is imported only when there are some, and the cluster joined at the
            first request for one).
    """

    data_dir: Path
    keys: KeyRing | None = None
    max_body_bytes: int = 32 * 1024 * 1024
    max_queries: int = 1_000
    max_results: int = 100_000
    max_texts: int = 1_000
    max_text_chars: int = 1_000_000
    max_response_bytes: int = 64 * 1024 * 1024
    access_log: bool = False
    sharded: tuple[ShardedEntry, ...] = ()

    def limits(self) -> str:
        """The request limits in one sentence, for the API's documentation."""
        return (
            f"Request limits: bodies up to {self.max_body_bytes:,} bytes; up to "
            f"{self.max_queries:,} queries and {self.max_results:,} hits (queries x k) per "
            f"search; up to {self.max_texts:,} texts and {self.max_text_chars:,} characters "
            f"to embed per request; answers up to about {self.max_response_bytes:,} bytes. "
            "Over a limit: 413 payload_too_large."
        )
