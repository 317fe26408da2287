"""The HTTP API: ``create_app(settings)`` builds a FastAPI app with no module-level state.

Every :class:`~simsearch.SimsearchError` is turned into ``{"error": {"code",
"message"}}`` with its HTTP status by one handler, so the Python client can
rebuild the same exception class from the code.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import simsearch
from simsearch._collection import Collection
from simsearch.errors import PayloadTooLargeError, SimsearchError
from simsearch.server.auth import ApiKey, Right
from simsearch.server.registry import CollectionRegistry
from simsearch.server.schemas import (
    CollectionInfo,
    CreateCollection,
    Deleted,
    DeleteItems,
    ErrorBody,
    GetItems,
    HitOut,
    ItemOut,
    ItemsOut,
    SearchRequest,
    SearchResponse,
    WriteItems,
)
from simsearch.server.settings import ServerSettings

__all__ = ["create_app"]

STATIC = files("simsearch.server") / "static"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Invalid input"),
        (401, "Missing or unknown API key"),
        (403, "The key lacks the right"),
        (404, "No such collection or item"),
        (409, "Conflict"),
        (413, "Body too large"),
    )
}


def _error_response(exc: SimsearchError) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": str(exc)}}
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before any handler reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _error_response(
            PayloadTooLargeError(f"the request body is over {self.limit} bytes")
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await too_large(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLargeError(f"the request body is over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


_bearer = HTTPBearer(auto_error=False, description="An API key from the server's key file.")


def _caller(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    request: Request,
) -> ApiKey | None:
    """The API key of the request (``None`` when the server runs without keys)."""
    settings: ServerSettings = request.app.state.settings
    if settings.keys is None:
        return None
    presented = credentials.credentials if credentials else request.headers.get("x-api-key")
    return settings.keys.authenticate(presented)


Caller = Annotated[ApiKey | None, Depends(_caller)]


def create_app(settings: ServerSettings) -> FastAPI:
    """A FastAPI app serving the collections under ``settings.data_dir``."""
    registry = CollectionRegistry(settings.data_dir)
    counts: Counter[str] = Counter()
    latency: defaultdict[str, float] = defaultdict(float)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        yield
        registry.close_all()

    app = FastAPI(
        title="simsearch",
        version=simsearch.__version__,
        description="Embedding similarity search: collections, items and filtered search.",
        lifespan=lifespan,
        responses=ERRORS,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.settings = settings

    @app.exception_handler(SimsearchError)
    async def simsearch_error(request: Request, exc: SimsearchError) -> JSONResponse:
        return _error_response(exc)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except SimsearchError as exc:  # raised by BodyLimit while the body streams in
            response = _error_response(exc)
        route = request.scope.get("route")
        label = f"{request.method} {getattr(route, 'path', 'other')}"
        counts[f"{label} {response.status_code}"] += 1
        latency[label] += time.perf_counter() - start
        return response

    def allow(key: ApiKey | None, collection: str | None, right: Right) -> None:
        if key is not None:
            key.require(collection, right)

    def info(name: str, col: Collection) -> CollectionInfo:
        data = col.info()
        data.pop("path")
        return CollectionInfo(name=name, **data)

    # -- service -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness: always answers when the server runs (no key needed)."""
        return {"status": "ok", "version": simsearch.__version__}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    def metrics(key: Caller) -> str:
        """Request counts and total latency per route, in Prometheus text format."""
        lines = ["# TYPE simsearch_requests_total counter"]
        for label, n in sorted(counts.items()):
            method, path, status = label.split(" ")
            lines.append(
                f'simsearch_requests_total{{method="{method}",path="{path}",status="{status}"}} {n}'
            )
        lines.append("# TYPE simsearch_request_seconds_total counter")
        for label, seconds in sorted(latency.items()):
            method, path = label.split(" ")
            lines.append(
                f'simsearch_request_seconds_total{{method="{method}",path="{path}"}} {seconds:.6f}'
            )
        return "\n".join(lines) + "\n"

    # -- collections -------------------------------------------------------------------------
    @app.get("/collections", tags=["collections"])
    def list_collections(key: Caller) -> list[CollectionInfo]:
        """The collections this key may read."""
        names = [n for n in registry.names() if key is None or key.right_on(n) is not None]
        return [info(n, registry.get(n)) for n in names]

    @app.post("/collections", tags=["collections"], status_code=201)
    def create_collection(body: CreateCollection, key: Caller) -> CollectionInfo:
        """Create a collection (admin key)."""
        allow(key, None, Right.ADMIN)
        col = registry.create(
            body.name, metric=body.metric, dim=body.dim, encoder=body.encoder, index=body.index
        )
        return info(body.name, col)

    @app.get("/collections/{name}", tags=["collections"])
    def get_collection(name: str, key: Caller) -> CollectionInfo:
        allow(key, name, Right.READ)
        return info(name, registry.get(name))

    @app.delete("/collections/{name}", tags=["collections"], status_code=204)
    def delete_collection(name: str, key: Caller) -> Response:
        """Delete a collection and all its items (admin key)."""
        allow(key, None, Right.ADMIN)
        registry.delete(name)
        return Response(status_code=204)

    # -- items -------------------------------------------------------------------------------
    @app.post("/collections/{name}/add", tags=["items"], status_code=201)
    def add(name: str, body: WriteItems, key: Caller) -> CollectionInfo:
        """Add new items; an existing id fails the whole batch (409)."""
        allow(key, name, Right.WRITE)
        col = registry.get(name)
        col.add(body.ids, vectors=body.vectors, texts=body.texts, metadata=body.metadata)
        return info(name, col)

    @app.post("/collections/{name}/upsert", tags=["items"])
    def upsert(name: str, body: WriteItems, key: Caller) -> CollectionInfo:
        """Add new items and replace existing ones whole."""
        allow(key, name, Right.WRITE)
        col = registry.get(name)
        col.upsert(body.ids, vectors=body.vectors, texts=body.texts, metadata=body.metadata)
        return info(name, col)

    @app.post("/collections/{name}/get", tags=["items"])
    def get_items(name: str, body: GetItems, key: Caller) -> ItemsOut:
        allow(key, name, Right.READ)
        items = registry.get(name).get(body.ids)
        return ItemsOut(
            items=[
                ItemOut(id=i.id, vector=i.vector.tolist(), text=i.text, metadata=i.metadata)
                for i in items
            ]
        )

    @app.post("/collections/{name}/delete", tags=["items"])
    def delete_items(name: str, body: DeleteItems, key: Caller) -> Deleted:
        """Delete by ids, by filter, or both."""
        allow(key, name, Right.WRITE)
        return Deleted(deleted=registry.get(name).delete(body.ids, where=body.where))

    @app.post("/collections/{name}/search", tags=["search"])
    def search(name: str, body: SearchRequest, key: Caller) -> SearchResponse:
        """The k most similar items per query; a filter applies before ranking."""
        allow(key, name, Right.READ)
        results = registry.get(name).search(
            body.query,
            k=body.k,
            where=body.where,
            min_relevance=body.min_relevance,
            cutoff=body.cutoff,
        )
        return SearchResponse(
            results=[
                [
                    HitOut(
                        id=h.id,
                        score=h.score,
                        metadata=h.metadata,
                        text=h.text,
                        relevance=h.relevance,
                    )
                    for h in row
                ]
                for row in results
            ]
        )

    return app
