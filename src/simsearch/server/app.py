"""The HTTP API: ``create_app(settings)`` builds a FastAPI app with no module-level state.

Every error a client sees is ``{"error": {"code", "message"}}``: a
:class:`~simsearch.SimsearchError` with its own status and code (so the Python
client can rebuild the same exception class from the code), a request that is
not valid JSON or does not fit the schema as 400 ``invalid_input``, an unknown
route as 404 ``not_found`` or 405 ``method_not_allowed``, an unexpected failure
as 500 ``simsearch_error``. Messages are bounded and never echo a request's body
(at most a short, escaped name from it).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

import simsearch
from simsearch.errors import (
    CorruptCollectionError,
    InvalidFilterError,
    InvalidInputError,
    PayloadTooLargeError,
    SimsearchError,
)
from simsearch.server.access import AccessLog
from simsearch.server.asgi import (
    Gate,
    JSONRoute,
    Metrics,
    error_body,
    error_response,
    short,
)
from simsearch.server.auth import ApiKey, Right
from simsearch.server.caller import Caller, key_of
from simsearch.server.docs_ui import add_docs_pages
from simsearch.server.field_routes import add_field_routes
from simsearch.server.items import add_item_routes
from simsearch.server.registry import CollectionRegistry, Served
from simsearch.server.schemas import (
    CollectionInfo,
    CreateCollection,
    Deleted,
    DeleteItems,
    ErrorBody,
    ErrorDetail,
    SearchRequest,
    SearchResponse,
    WriteItems,
)
from simsearch.server.search_lane import SEARCH_PATH, SearchLane
from simsearch.server.settings import ServerSettings
from simsearch.types import Hit

__all__ = ["create_app"]

log = logging.getLogger("simsearch.server")
#: Threads of the pool searches run on: as many as Starlette's default pool (40).
SEARCH_THREADS = 40
STATIC = files("simsearch.server") / "static"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (
            400,
            "Invalid input: a body that is not strict JSON (NaN, Infinity, lone surrogates "
            "and nesting past about 200 levels are refused) or does not fit the schema "
            "(code invalid_input, with the first few problems), or values simsearch refuses "
            "(invalid_vector, invalid_filter...)",
        ),
        (401, "Missing or unknown API key (checked before the body is read)"),
        (403, "The key lacks the right"),
        (404, "No such collection or item (collection_not_found, item_not_found)"),
        (409, "Conflict"),
        (413, "Body too large, or more work than one request may ask (payload_too_large)"),
        (500, "A damaged collection (collection_corrupt) or an unexpected failure"),
        (503, "The collection stayed locked by another writer (store_busy)"),
    )
}
#: What an HTTPException (from routing or the static files) is called in the error shape.
HTTP_CODES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}
#: A validation error lists this many problems; the rest are counted.
SHOWN_PROBLEMS = 3


def _problems(errors: Sequence[Any], content_type: str) -> str:
    """A validation error in a few bounded lines, quoting no input."""
    if errors and "json" not in content_type.lower():
        first = errors[0]
        if tuple(first.get("loc", ())) == ("body",) and first.get("type") != "missing":
            return "the body must be a JSON object, sent with Content-Type: application/json"
    if errors and errors[0].get("type") == "json_invalid":
        reason = str(errors[0].get("ctx", {}).get("error", ""))
        return f"the body is not valid JSON: {short(reason, 200)}"
    shown = []
    for error in errors[:SHOWN_PROBLEMS]:
        where = ".".join(short(str(part), 40) for part in error.get("loc", ()))
        shown.append(f"{where}: {short(str(error.get('msg', 'invalid')), 200)}")
    more = len(errors) - SHOWN_PROBLEMS
    extra = f" (and {more} more)" if more > 0 else ""
    return "the request does not fit the API: " + "; ".join(shown) + extra


def _check_field_names(where: Any) -> None:
    """Refuse NUL in a filter's keys: SQLite cannot take it in a JSON path."""
    stack = [where]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name, value in node.items():
                if "\x00" in name:
                    raise InvalidFilterError("a filter field name holds a NUL character")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def create_app(settings: ServerSettings) -> FastAPI:
    """A FastAPI app serving the collections under ``settings.data_dir``."""
    registry = CollectionRegistry(settings.data_dir, settings.sharded)
    counts: Counter[str] = Counter()
    latency: defaultdict[str, float] = defaultdict(float)

    # Searches run on this app's own pool (see the search route), made at the first search
    # and shut down, its searches finished, before the collections close.
    searches: list[ThreadPoolExecutor] = []

    def search_pool() -> ThreadPoolExecutor:
        if not searches:  # only the event loop's thread gets here: no race
            searches.append(ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="search"))
        return searches[0]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        yield
        if searches:
            searches.pop().shutdown(wait=True)
        registry.close_all()

    app = FastAPI(
        title="simsearch",
        version=simsearch.__version__,
        description="Embedding similarity search: collections, items and filtered search. "
        + settings.limits(),
        lifespan=lifespan,
        responses=ERRORS,
        docs_url=None,  # add_docs_pages serves them from local assets, with no CDN
        redoc_url=None,
    )
    app.router.route_class = JSONRoute
    app.state.settings = settings
    _document_errors_only(app)

    data_prefix = str(settings.data_dir.resolve()) + "/"

    def answer_error(exc: SimsearchError) -> JSONResponse:
        # A client learns collection names, never where the server keeps them.
        message = str(exc).replace(data_prefix, "").replace(str(settings.data_dir) + "/", "")
        return error_response(type(exc)(message) if message != str(exc) else exc)

    @app.exception_handler(SimsearchError)
    async def simsearch_error(request: Request, exc: SimsearchError) -> JSONResponse:
        return answer_error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = _problems(exc.errors(), request.headers.get("content-type", ""))
        return error_response(InvalidInputError(problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        body = error_body(code, str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log (the server re-raises after answering, and then
        # closes the connection: the answer says so, or a client reusing it would read
        # the reset as a server that is down); the client learns only that it failed.
        answer = error_response(SimsearchError("the server failed on this request; see its log"))
        answer.headers["Connection"] = "close"
        return answer

    def allow(key: ApiKey | None, collection: str | None, right: Right) -> None:
        if key is not None:
            key.require(collection, right)

    def info(name: str, col: Served) -> CollectionInfo:
        data = col.info()
        data.pop("path")
        return CollectionInfo(name=name, **data)

    def check_texts(texts: Sequence[str] | None) -> None:
        if texts is None:
            return
        if len(texts) > settings.max_texts:
            raise PayloadTooLargeError(
                f"{len(texts):,} texts to embed; one request may give at most "
                f"{settings.max_texts:,}"
            )
        chars = sum(map(len, texts))
        if chars > settings.max_text_chars:
            raise PayloadTooLargeError(
                f"{chars:,} characters to embed; one request may give at most "
                f"{settings.max_text_chars:,}"
            )

    def check_answer(size: int) -> None:
        if size > settings.max_response_bytes:
            raise PayloadTooLargeError(
                f"the answer would hold about {size:,} bytes; this server sends at most "
                f"{settings.max_response_bytes:,}: ask for fewer hits or items"
            )

    def check_search(body: SearchRequest, sets: bool) -> None:
        query = body.query
        texts: list[str] | None = None
        if isinstance(query, str):
            queries, texts = 1, [query]
        elif query and isinstance(query[0], str):
            queries, texts = len(query), [q for q in query if isinstance(q, str)]
        elif (
            sets and query and isinstance(query[0], list)
            and not (query[0] and isinstance(query[0][0], list))
        ):  # fmt: skip
            queries = 1  # one set of query vectors
        elif query and isinstance(query[0], list):
            queries = len(query)
        else:  # one vector (or an empty list, which simsearch refuses)
            queries = 1
        if queries > settings.max_queries:
            raise PayloadTooLargeError(
                f"{queries:,} queries; one search may give at most {settings.max_queries:,}"
            )
        depth = body.k + body.offset  # the hits a page skips are ranked too
        if queries * depth > settings.max_results:
            raise PayloadTooLargeError(
                f"{queries:,} queries x k={depth} asks for {queries * depth:,} hits; one "
                f"search may ask for at most {settings.max_results:,}"
            )
        check_texts(texts)

    # -- search ------------------------------------------------------------------------------
    # The first route: the router tries routes in order, and searches are what a server
    # answers most (behind twenty routes, matching them cost about 50 us a search).
    @app.post(
        SEARCH_PATH,
        tags=["search"],
        description="The k most similar items per query; a filter applies before ranking. "
        f"At most {settings.max_queries:,} queries and {settings.max_results:,} hits "
        f"(queries x k) per search; text queries count against the embedding limits "
        f"({settings.max_texts:,} texts, {settings.max_text_chars:,} characters). Over a "
        "limit: 413 payload_too_large.",
        response_model=SearchResponse,
    )
    async def search(name: str, body: SearchRequest, key: Caller) -> Response:
        return await searched(name, body, key)

    async def searched(name: str, body: SearchRequest, key: ApiKey | None) -> Response:
        # Run on the app's own pool: Starlette's hand-off of a plain route to its thread
        # pool measured about 0.25 ms more a request than an executor's, as much as the
        # search of a 100,000-item graph.
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # as Starlette's pool carries it
        return await loop.run_in_executor(search_pool(), context.run, run_search, name, body, key)

    def run_search(name: str, body: SearchRequest, key: ApiKey | None) -> Response:
        allow(key, name, Right.READ)
        col = registry.get(name)
        check_search(body, col.config.multivector is not None)
        _check_field_names(body.where)
        results = col.search(
            body.query,
            k=body.k,
            offset=body.offset,
            where=body.where,
            min_relevance=body.min_relevance,
            cutoff=body.cutoff,
            mode=body.mode,
            fusion=body.fusion,
            alpha=body.alpha,
            candidates=body.candidates,
            where_text=body.where_text,
        )
        check_answer(sum(h.size_hint() for row in results for h in row))
        # The hits are plain JSON already (checked when stored): written directly, as the
        # schema above documents them, instead of validated again field by field.
        return JSONResponse({"results": [[_hit_json(h) for h in row] for row in results]})

    # The last added runs first: metrics see every request, the gate's refusals too; the
    # search lane runs inside the gate (see simsearch.server.search_lane).
    (search_route,) = [r for r in app.routes if getattr(r, "path", None) == SEARCH_PATH]
    app.add_middleware(
        SearchLane, route=search_route, search=searched,
        key_of=lambda scope: key_of(settings, scope), answer_error=answer_error,
    )  # fmt: skip
    app.add_middleware(Gate, keys=settings.keys, limit=settings.max_body_bytes)
    app.add_middleware(Metrics, routes=app.router.routes, counts=counts, latency=latency)
    if settings.access_log:
        app.add_middleware(AccessLog)

    # -- service -----------------------------------------------------------------------------
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    add_docs_pages(app)

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
        listed = []
        for name in names:
            try:
                listed.append(info(name, registry.get(name)))
            except Exception as exc:  # any failure of one collection: list it, go on
                log.warning("collection %r cannot be listed: %s", name, exc)
                failure = (
                    exc
                    if isinstance(exc, SimsearchError)
                    else CorruptCollectionError(f"collection {name!r} cannot be read: {exc}")
                )
                error = ErrorDetail(code=failure.code, message=short(str(failure), 500))
                listed.append(CollectionInfo(name=name, error=error))
        return listed

    @app.post("/collections", tags=["collections"], status_code=201)
    def create_collection(body: CreateCollection, key: Caller) -> CollectionInfo:
        """Create a collection (admin key)."""
        allow(key, None, Right.ADMIN)
        col = registry.create(
            body.name, metric=body.metric, dim=body.dim, encoder=body.encoder, index=body.index,
            multivector=body.multivector,
        )  # fmt: skip
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
    embed_limits = (
        f"At most {settings.max_texts:,} texts and {settings.max_text_chars:,} characters to "
        "embed per request (413 payload_too_large)."
    )

    @app.post(
        "/collections/{name}/add",
        tags=["items"],
        status_code=201,
        description=f"Add new items; an existing id fails the whole batch (409). {embed_limits}",
    )
    def add(name: str, body: WriteItems, key: Caller) -> CollectionInfo:
        allow(key, name, Right.WRITE)
        check_texts(body.texts)
        col = registry.get(name)
        col.add(
            body.ids, vectors=body.vectors, texts=body.texts, metadata=body.metadata,
            multivectors=body.multivectors,
        )  # fmt: skip
        return info(name, col)

    @app.post(
        "/collections/{name}/upsert",
        tags=["items"],
        description=f"Add new items and replace existing ones whole. {embed_limits}",
    )
    def upsert(name: str, body: WriteItems, key: Caller) -> CollectionInfo:
        allow(key, name, Right.WRITE)
        check_texts(body.texts)
        col = registry.get(name)
        col.upsert(
            body.ids, vectors=body.vectors, texts=body.texts, metadata=body.metadata,
            multivectors=body.multivectors,
        )  # fmt: skip
        return info(name, col)

    @app.post("/collections/{name}/delete", tags=["items"])
    def delete_items(name: str, body: DeleteItems, key: Caller) -> Deleted:
        """Delete by ids, by filter, or both; ``all`` alone deletes every item."""
        allow(key, name, Right.WRITE)
        _check_field_names(body.where)
        col = registry.get(name)
        return Deleted(deleted=col.delete(body.ids, where=body.where, all=body.all))

    add_item_routes(
        app, registry, allow=allow, check_texts=check_texts,
        check_answer=check_answer, embed_limits=embed_limits,
    )  # fmt: skip
    add_field_routes(app, registry, allow=allow)

    return app


def _document_errors_only(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the OpenAPI document: a request that does not fit the schema
    gets 400 in the error shape like every other invalid input."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def _hit_json(h: Hit) -> dict[str, Any]:
    """One hit as :class:`~simsearch.server.schemas.HitOut` writes it: every field, nulls
    too, and a score JSON cannot hold (an l2 distance that overflowed) as null."""
    return {
        "id": h.id,
        "score": _finite(h.score),
        "metadata": h.metadata,
        "text": h.text,
        "relevance": _finite(h.relevance),
        "dense_score": _finite(h.dense_score),
        "lexical_score": _finite(h.lexical_score),
    }


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None
