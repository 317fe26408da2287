"""The access log: one line per request, with its method, path, status and time.

Written to the ``simsearch.access`` logger at INFO. A line holds the client's
address, the method, the path (control characters escaped, cut at 300
characters) and never a header or a query string, so an API key never reaches
the log, however a client sends it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACCESS_LOGGER", "AccessLog", "loggable", "serve_noting_status"]

ACCESS_LOGGER = "simsearch.access"
MAX_PATH = 300


def loggable(text: str, limit: int = MAX_PATH) -> str:
    """``text`` with control characters escaped (a path cannot forge a log line), cut."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text)


async def serve_noting_status(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, done: Callable[[int], None]
) -> None:
    """Run ``app`` on one request, then call ``done`` with the status it answered.

    A request that fails before its response starts counts as 500, the status the
    server's outer layer gives it.
    """
    status = 500

    async def send_status(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, send_status)
    finally:
        done(status)


class AccessLog:
    """ASGI middleware that logs every HTTP request once it has been answered."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        def log(status: int) -> None:
            client = scope.get("client")
            self.logger.info(
                "%s %s %s %d %.1f ms",
                client[0] if client else "-",
                loggable(str(scope.get("method", "")), 16),
                loggable(str(scope.get("path", ""))),
                status,
                (time.perf_counter() - start) * 1000,
            )

        await serve_noting_status(self.app, scope, receive, send, log)
