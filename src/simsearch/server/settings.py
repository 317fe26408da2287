"""Server settings, fixed when the app is created."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simsearch.server.auth import KeyRing

__all__ = ["ServerSettings"]


@dataclass(frozen=True)
class ServerSettings:
    """What one server instance serves and how.

    Attributes:
        data_dir: folder whose subfolders are the collections.
        keys: the API keys; ``None`` serves without authentication (loopback only,
            unless the CLI is told ``--insecure``).
        max_body_bytes: larger request bodies are refused with 413.
    """

    data_dir: Path
    keys: KeyRing | None = None
    max_body_bytes: int = 32 * 1024 * 1024
