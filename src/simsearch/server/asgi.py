"""The layers every request passes before a handler: metrics, the API-key and body-size gate,
strict JSON parsing, and the one error shape ``{"error": {"code", "message"}}``.

The gate is plain ASGI so it can answer 401 before a byte of the body is read and 413
for an over-long body however it is sent (with a length or chunked): a limit raised
from inside ``receive()`` would reach FastAPI's body parsing and come out as 400.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic_core import from_json
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simsearch.errors import AuthenticationError, PayloadTooLargeError, SimsearchError
from simsearch.server.access import serve_noting_status
from simsearch.server.auth import KeyRing

__all__ = [
    "KEY_SCOPE",
    "Gate",
    "JSONRoute",
    "Metrics",
    "error_body",
    "error_response",
    "presented_key",
    "replaying",
    "short",
]

#: Where the gate leaves the authenticated :class:`~simsearch.server.auth.ApiKey`.
KEY_SCOPE = "simsearch.api_key"
#: Paths served without a key, as before keys were checked in the gate.
OPEN_PATHS = frozenset(
    {"/", "/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
#: Folders of assets served without a key: the web page's and the API documentation's.
OPEN_PREFIXES = ("/static/", "/docs-assets/")
#: An error message is cut to this many characters: it may quote what the request sent.
MAX_MESSAGE = 1_000
#: Methods counted under their own name in /metrics; any other one counts as OTHER.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters and made encodable as UTF-8 (a lone surrogate
    in a message would make the response itself fail)."""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": short(message, MAX_MESSAGE)}}


def error_response(exc: SimsearchError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(
        error_body(exc.code, str(exc)), status_code=exc.http_status, headers=headers
    )


def presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer KEY``, else of ``X-API-Key``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key")


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or path == "/static"


class Gate:
    """Authenticate, then read the whole body (at most ``limit`` bytes), then call the app.

    The open paths (the page, its static files, /health and the API documents) take no
    body and pass straight through. With keys, a request to any other path needs a
    valid key before its body is read, so a stranger cannot make the server read or
    parse anything. The body is then read here, in full, and handed on as one message:
    an over-long body, chunked or not, gets 413.
    """

    def __init__(self, app: ASGIApp, *, keys: KeyRing | None, limit: int) -> None:
        self.app = app
        self.keys = keys
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _is_open(scope["path"]):  # these routes read no body: nothing to check or buffer
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.keys is not None:
            try:
                scope[KEY_SCOPE] = self.keys.authenticate(presented_key(headers))
            except AuthenticationError as exc:
                await error_response(exc)(scope, receive, send)
                return
        too_large = PayloadTooLargeError(f"the request body is over {self.limit:,} bytes")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(too_large)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await error_response(too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole as one message, then waits on ``receive``
    (for the disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class Metrics:
    """Count requests and their latency by method, route template and status.

    Labels come only from fixed sets (the known methods and the app's route
    templates), so invented methods or paths cannot add series without end.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        counts: Counter[str],
        latency: defaultdict[str, float],
    ) -> None:
        self.app = app
        self.routes = routes
        self.counts = counts
        self.latency = latency

    def _path(self, scope: Scope) -> str:
        routed = scope.get("route")  # the route the router chose, when it chose one
        if routed is not None:
            return str(getattr(routed, "path", "other"))
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return str(getattr(route, "path", "other"))
        return "other"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        def count(status: int) -> None:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            label = f"{method} {self._path(scope)}"
            self.counts[f"{label} {status}"] += 1
            self.latency[label] += time.perf_counter() - start

        await serve_noting_status(self.app, scope, receive, send, count)


class _JSONRequest(Request):
    """A request whose JSON body is parsed strictly (I-JSON): no NaN or Infinity, no lone
    surrogates, nesting at most about 200 levels deep. Such values could not be stored or
    answered as JSON; refusing them here gives a 400 instead of an error deep inside."""

    _strict_json: Any

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            try:
                self._strict_json = from_json(await self.body(), allow_inf_nan=False)
            except ValueError as exc:
                # FastAPI answers a JSONDecodeError as a validation error on the body.
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._strict_json


class JSONRoute(APIRoute):
    """The API's routes: bodies are parsed by :class:`_JSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_JSONRequest(request.scope, request.receive))

        return strict
