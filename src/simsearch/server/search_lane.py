"""The short way a search takes through the server.

``POST /collections/{name}/search`` with a JSON body that fits
:class:`~simsearch.server.schemas.SearchRequest` is answered here, past FastAPI's
router, exception layers, dependency solving and body validation: on loopback those
cost about 0.5 ms a request, twice the search of a 100,000-item graph, and a search
is what a server answers most.

The lane sits inside the gate (the key was checked, the body read and bounded
before it) and inside the metrics and the access log (a search it answers is
counted and logged as any request). It takes a request only when the app would
answer it the same way: the search route's path and method, a JSON content type,
a body that is strict JSON (:class:`~simsearch.server.asgi.JSONRoute`'s parsing)
and fits the schema. Anything else goes on to the app with the body it sent, so an
invalid request gets the app's own 400 with its problems: errors have one source.
The search runs the route's own function (the app's pool, its checks and limits),
and a :class:`~simsearch.SimsearchError` is answered by the app's own conversion.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Response
from pydantic_core import from_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simsearch.errors import SimsearchError
from simsearch.server.asgi import replaying
from simsearch.server.auth import ApiKey
from simsearch.server.schemas import SearchRequest

__all__ = ["SEARCH_PATH", "SearchLane"]

#: The search route's path, as the app declares it.
SEARCH_PATH = "/collections/{name}/search"
#: The same path as Starlette matches it (a name is one segment).
_MATCH = re.compile(r"/collections/([^/]+)/search")

#: ``search(name, body, key)``: the route's own answer.
Search = Callable[[str, SearchRequest, "ApiKey | None"], Awaitable[Response]]


class SearchLane:
    """ASGI middleware answering well-formed searches itself; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        route: Any,
        search: Search,
        key_of: Callable[[Scope], ApiKey | None],
        answer_error: Callable[[SimsearchError], Response],
    ) -> None:
        self.app = app
        self.route = route
        self.search = search
        self.key_of = key_of
        self.answer_error = answer_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            matched = _MATCH.fullmatch(scope["path"])
        if matched is None or not _sends_json(scope):
            await self.app(scope, receive, send)
            return
        raw = await _body(receive)
        if raw is None:  # the client went away
            return
        try:
            body = SearchRequest.model_validate(from_json(raw, allow_inf_nan=False))
        except ValueError:  # not strict JSON, or not the schema: the app says what is wrong
            await self.app(scope, replaying(raw, receive), send)
            return
        scope["route"] = self.route  # what the metrics label a request by, as routing sets it
        try:
            response = await self.search(matched.group(1), body, self.key_of(scope))
        except SimsearchError as exc:
            response = self.answer_error(exc)
        await response(scope, receive, send)


def _sends_json(scope: Scope) -> bool:
    """Whether the request's content type is JSON (``application/json``, any parameters),
    the type the app parses a body as."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return bool(media == b"application/json")
    return False


async def _body(receive: Receive) -> bytes | None:
    """The whole body (the gate has bounded it), or ``None`` if the client left."""
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
