"""The ``serve`` command: the HTTP server over a folder of collections."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any

import typer

from simsearch.cli.common import app, err, errors
from simsearch.errors import InvalidArgumentError


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Argument(help="Folder holding the collections.")],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to bind.")] = 8000,
    api_keys: Annotated[
        Path | None,
        typer.Option(envvar="SIMSEARCH_API_KEYS_FILE", help="JSON file of API keys and scopes."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option(help="Allow serving a non-loopback address without API keys.")
    ] = False,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body.")] = 32.0,
    max_queries: Annotated[int, typer.Option(min=1, help="Most queries per search.")] = 1_000,
    max_results: Annotated[
        int, typer.Option(min=1, help="Most hits per search (queries x k).")
    ] = 100_000,
    max_texts: Annotated[int, typer.Option(min=1, help="Most texts to embed per request.")] = 1_000,
    max_text_chars: Annotated[
        int, typer.Option(min=1, help="Most characters to embed per request.")
    ] = 1_000_000,
    max_response_mb: Annotated[
        float, typer.Option(min=0.001, help="Largest answer to a search or get.")
    ] = 64.0,
) -> None:
    """Serve the collections in DATA_DIR over HTTP, with a search page at /."""
    with errors():
        from simsearch.encoders.base import require

        require("fastapi", "server")
        uvicorn: Any = require("uvicorn", "server")
        from simsearch.server.app import create_app
        from simsearch.server.auth import KeyRing
        from simsearch.server.settings import ServerSettings

        keys = KeyRing.from_file(api_keys) if api_keys else None
        if keys is None and not _is_loopback(host) and not insecure:
            raise InvalidArgumentError(
                f"refusing to serve {host} without API keys: pass --api-keys FILE, "
                "or --insecure to serve it open"
            )
        settings = ServerSettings(
            data_dir=data_dir,
            keys=keys,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_queries=max_queries,
            max_results=max_results,
            max_texts=max_texts,
            max_text_chars=max_text_chars,
            max_response_bytes=int(max_response_mb * 1024 * 1024),
        )
        err.print(
            f"Serving {data_dir} on http://{host}:{port} "
            f"({'API keys required' if keys else 'no API keys'})",
            highlight=False,
        )
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
