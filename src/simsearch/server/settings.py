"""Server settings, fixed when the app is created."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simsearch.server.auth import KeyRing

__all__ = ["ServerSettings"]


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

    def limits(self) -> str:
        """The request limits in one sentence, for the API's documentation."""
        return (
            f"Request limits: bodies up to {self.max_body_bytes:,} bytes; up to "
            f"{self.max_queries:,} queries and {self.max_results:,} hits (queries x k) per "
            f"search; up to {self.max_texts:,} texts and {self.max_text_chars:,} characters "
            f"to embed per request; answers up to about {self.max_response_bytes:,} bytes. "
            "Over a limit: 413 payload_too_large."
        )
