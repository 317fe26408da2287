"""The ``serve`` command: the HTTP server over a folder of collections.

The port is bound before anything is announced, so a port in use is one clear
error line and exit status 1, and ``Serving ...`` names the port truly bound
(``--port 0`` picks a free one).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from simsearch.cli.common import app, err, errors
from simsearch.errors import InvalidArgumentError, NotACollectionError
from simsearch.store import DB_FILENAME


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
    create: Annotated[
        bool, typer.Option("--create", help="Create DATA_DIR if it does not exist.")
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(help="Log one line per request on stderr: method, path, status, time."),
    ] = True,
    sharded: Annotated[
        Path | None,
        typer.Option(
            "--sharded",
            help="JSON file of sharded collections to serve by name beside DATA_DIR's: "
            '{"sharded": [{"name": ..., "root": ..., "ray_address": ...}]}.',
        ),
    ] = None,
) -> None:
    """Serve the collections in DATA_DIR over HTTP, with a web page at / and the API at /docs."""
    with errors():
        _check_data_dir(data_dir, create=create)
        from simsearch.encoders.base import require

        require("fastapi", "server")
        uvicorn: Any = require("uvicorn", "server")
        from simsearch.server.app import create_app
        from simsearch.server.auth import KeyRing
        from simsearch.server.settings import ServerSettings, load_sharded

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
            access_log=access_log,
            sharded=load_sharded(sharded) if sharded is not None else (),
        )
        server_app = create_app(settings)
        sock = _bind(host, port)
        if create:
            data_dir.mkdir(parents=True, exist_ok=True)
        if access_log:
            _log_requests_to_stderr()
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        err.print(
            f"Serving {data_dir} on http://{shown}:{bound} "
            f"({'API keys required' if keys else 'no API keys'})",
            highlight=False,
            soft_wrap=True,
        )
        # h11 and asyncio whatever else is installed: httptools would answer a request with
        # an unknown method itself (a bare 400 outside the error shape, never counted).
        config = uvicorn.Config(
            server_app, log_level="warning", access_log=False, http="h11", loop="asyncio"
        )
        uvicorn.Server(config).run(sockets=[sock])


def _check_data_dir(data_dir: Path, *, create: bool) -> None:
    """Refuse a folder that is missing (a typo would serve an empty one) or is a collection."""
    if (data_dir / DB_FILENAME).is_file():
        raise NotACollectionError(
            f"{data_dir} is a collection; serve the folder that holds it: "
            f"simsearch serve {data_dir.resolve().parent}"
        )
    if data_dir.exists() and not data_dir.is_dir():
        raise NotACollectionError(f"{data_dir} is not a folder")
    if not data_dir.exists() and not create:
        raise NotACollectionError(
            f"no folder {data_dir}: pass --create to start with an empty one, "
            "or name the folder that holds your collections"
        )


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or a clear error when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidArgumentError(f"cannot bind {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    if sys.platform != "win32":  # as uvicorn does: a restarted server may reuse the port at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidArgumentError(
                f"port {port} on {host} is in use: stop what serves it, or pass --port "
                "with another port (--port 0 picks a free one)"
            ) from None
        raise InvalidArgumentError(f"cannot bind {host} port {port}: {exc.strerror}") from None
    # Listening at once: a client that connects between the announcement and the server's
    # start waits in the backlog instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _log_requests_to_stderr() -> None:
    from simsearch.server.access import ACCESS_LOGGER

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
