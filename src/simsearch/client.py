"""A Python client for the simsearch HTTP server, mirroring the Collection API.

>>> client = Client("http://127.0.0.1:8000", api_key="…")   # doctest: +SKIP
>>> docs = client.create_collection("docs", metric="cosine")  # doctest: +SKIP
>>> docs.add(["a"], texts=["hello world"])                   # doctest: +SKIP
>>> docs.search("greeting", k=3)[0]                          # doctest: +SKIP

Inputs are checked here with the same rules as a local collection, and the
server's errors come back as the same exception classes (rebuilt from their
stable codes), so code written against :class:`~simsearch.Collection` works
against a :class:`RemoteCollection` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import numpy as np

from simsearch.browse import check_include
from simsearch.errors import (
    AuthenticationError,
    InvalidArgumentError,
    InvalidInputError,
    ServerUnavailableError,
    SimsearchError,
    error_class_for_code,
)
from simsearch.http_transport import (
    ConnectionPool,
    TransportTimeoutError,
    TransportUnavailableError,
)
from simsearch.multivector.tokens import as_query_sets, as_token_sets
from simsearch.types import Hit, Item, JSONObject, Results
from simsearch.validation import (
    as_vector_batch,
    check_collection_name,
    check_ids,
    check_k,
    check_metadata,
    check_texts,
)

__all__ = ["Client", "RemoteCollection"]


def _raise_for(response: Any) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "code" in error:
        cls = error_class_for_code(str(error["code"]))
        raise cls(str(error.get("message", "")))
    if response.status_code == 422:  # the request did not fit the API's schema
        detail = body.get("detail", body) if isinstance(body, dict) else body
        raise InvalidInputError(f"the server refused the request: {detail}")
    if response.status_code == 401:
        raise AuthenticationError("the server wants an API key")
    raise SimsearchError(f"the server answered {response.status_code}: {response.text[:200]}")


class Client:
    """Talks to one simsearch server.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer``; ``None`` for a server without keys.
        timeout: seconds per request.

    A server that cannot be reached, or does not answer within ``timeout``, raises
    :class:`~simsearch.ServerUnavailableError` naming the URL.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = ConnectionPool(self.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; the server's error comes back as its simsearch class."""
        try:
            response = self._http.send(method, path, body)
        except TransportTimeoutError:
            raise ServerUnavailableError(
                f"the simsearch server at {self.url} did not answer within {self.timeout:g} s "
                f"({method} {path}); pass Client(timeout=...) for longer work"
            ) from None
        except TransportUnavailableError as exc:
            reason = str(exc)
            raise ServerUnavailableError(
                f"cannot reach the simsearch server at {self.url}: {reason} "
                "(is `simsearch serve` running there?)"
            ) from exc
        _raise_for(response)
        return response.json() if response.content else None

    def health(self) -> dict[str, str]:
        result: dict[str, str] = self.request("GET", "/health")
        return result

    def list_collections(self) -> list[dict[str, Any]]:
        """Info of every collection this key may read."""
        result: list[dict[str, Any]] = self.request("GET", "/collections")
        return result

    def create_collection(
        self,
        name: str,
        *,
        metric: str = "cosine",
        dim: int | None = None,
        encoder: str | None = None,
        index: str = "flat",
        multivector: bool = False,
    ) -> RemoteCollection:
        """Create a collection (needs an admin key); ``index``: ``"flat"``, ``"hnsw"``,
        ``"hnsw-int8"``, ``"hnsw-binary"`` or ``"ivfpq"`` with their defaults;
        ``multivector=True``: of sets of vectors."""
        check_collection_name(name)
        body = {"name": name, "metric": metric, "dim": dim, "encoder": encoder, "index": index}
        if multivector:
            body["multivector"] = True
        self.request("POST", "/collections", body)
        return RemoteCollection(self, name)

    def collection(self, name: str) -> RemoteCollection:
        """An existing collection; raises :class:`~simsearch.CollectionNotFoundError` if none."""
        col = RemoteCollection(self, check_collection_name(name))
        col.info()
        return col

    def delete_collection(self, name: str) -> None:
        """Delete a collection and its items (needs an admin key)."""
        self.request("DELETE", f"/collections/{quote(check_collection_name(name), safe='')}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_set_batch(query: Any) -> bool:
    """Whether ``query`` is several sets of vectors: a 3-D array or a list of 2-D ones."""
    if isinstance(query, np.ndarray):
        return query.ndim == 3
    return (
        isinstance(query, Sequence)
        and bool(query)
        and all(isinstance(q, np.ndarray) and q.ndim == 2 for q in query)
    ) or (
        isinstance(query, Sequence)
        and bool(query)
        and isinstance(query[0], Sequence)
        and bool(query[0])
        and isinstance(query[0][0], Sequence)
    )


def _vectors(vectors: Any) -> list[list[float]] | None:
    if vectors is None:
        return None
    checked: list[list[float]] = as_vector_batch(vectors, None).tolist()
    return checked


class RemoteCollection:
    """A collection on a server, with the methods of :class:`~simsearch.Collection`."""

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self.name = name
        self._base = f"/collections/{quote(name, safe='')}"

    def __repr__(self) -> str:
        return f"RemoteCollection({self.name!r})"

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.request("GET", self._base)
        return result

    def __len__(self) -> int:
        return int(self.info()["count"])

    def _write(
        self, op: str, ids: Any, vectors: Any, texts: Any, metadata: Any, multivectors: Any
    ) -> None:
        id_list = check_ids(ids)
        body = {
            "ids": id_list,
            "vectors": _vectors(vectors),
            "texts": check_texts(texts, len(id_list)) if texts is not None else None,
            "metadata": check_metadata(metadata, len(id_list)) if metadata is not None else None,
        }
        if multivectors is not None:
            sets = as_token_sets(multivectors, len(id_list), None)
            body["multivectors"] = [s.tolist() for s in sets]
        if body["vectors"] is not None and len(body["vectors"]) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(body['vectors'])} vectors")
        if vectors is None and texts is None and multivectors is None:
            raise InvalidArgumentError(
                "give vectors, texts, or both (to change only the metadata of stored items, use "
                "update(ids, metadata=...))"
            )
        self._client.request("POST", f"{self._base}/{op}", body)

    def add(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Any = None,
        multivectors: Any = None,
    ) -> None:
        """Add new items; see :meth:`simsearch.Collection.add`."""
        self._write("add", ids, vectors, texts, metadata, multivectors)

    def upsert(
        self,
        ids: Sequence[str] | str,
        *,
        vectors: Any = None,
        texts: Sequence[str] | str | None = None,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        progress: Any = None,
        multivectors: Any = None,
    ) -> None:
        """Add or replace items; see :meth:`simsearch.Collection.upsert`."""
        self._write("upsert", ids, vectors, texts, metadata, multivectors)

    def delete(
        self, ids: Sequence[str] | str | None = None, *, where: Any = None, all: bool = False
    ) -> int:
        """Delete by ids and/or filter, or every item with ``all=True`` alone; returns how
        many were deleted. See :meth:`simsearch.Collection.delete`."""
        if not isinstance(all, bool):
            raise InvalidArgumentError(f"all must be true or false, got {all!r}")
        if all and (ids is not None or where is not None):
            raise InvalidArgumentError("all=True deletes every item: give it without ids or where")
        if ids is None and where is None and not all:
            raise InvalidArgumentError(
                "give ids, where, or both; all=True deletes every item (delete never "
                "empties silently)"
            )
        body: dict[str, Any] = {"ids": check_ids(ids) if ids is not None else None, "where": where}
        if all:  # sent only when asked, so a server from before the option still understands
            body["all"] = True
        return int(self._client.request("POST", f"{self._base}/delete", body)["deleted"])

    def get(
        self,
        ids: Sequence[str] | str | None = None,
        *,
        where: Any = None,
        limit: int | None = None,
        offset: int = 0,
        include: Sequence[str] = ("metadata", "text", "vector"),
        missing: str = "error",
        where_text: Any = None,
    ) -> list[Item]:
        """Items by id and/or filter, paged; see :meth:`simsearch.Collection.get` (a server
        sends at most 10,000 items an answer)."""
        parts = sorted(check_include(include))
        body: dict[str, Any] = {"offset": offset, "include": parts, "missing": missing}
        if ids is not None:
            body["ids"] = check_ids(ids)
        if where is not None:
            body["where"] = where
        if where_text is not None:
            body["where_text"] = where_text
        if limit is not None:
            body["limit"] = limit
        data = self._client.request("POST", f"{self._base}/get", body)
        return [
            Item(
                id=i["id"],
                vector=None if i.get("vector") is None else np.asarray(i["vector"], np.float32),
                text=i.get("text"),
                metadata=i.get("metadata") or {},
            )
            for i in data["items"]
        ]

    def index_field(self, field: str, kind: str, *, window: bool = False) -> bool:
        """Index a metadata field (admin key); see :meth:`simsearch.Collection.index_field`."""
        body = {"field": field, "kind": kind, "window": window}
        return bool(self._client.request("POST", f"{self._base}/fields", body)["changed"])

    def drop_field_index(self, field: str) -> bool:
        """Drop a payload index (admin key); see :meth:`simsearch.Collection.drop_field_index`."""
        body = {"field": field}
        return bool(self._client.request("POST", f"{self._base}/fields/drop", body)["changed"])

    def explain(self, *, where: Any = None, exact: bool = False) -> dict[str, Any]:
        """The plan of a search with ``where``; see :meth:`simsearch.Collection.explain`."""
        body = {"where": where, "exact": exact}
        return dict(self._client.request("POST", f"{self._base}/explain", body))

    def count(self, where: Any = None, *, where_text: Any = None) -> int:
        """How many items match ``where`` and ``where_text``; see
        :meth:`simsearch.Collection.count`."""
        body = {"where": where, **({"where_text": where_text} if where_text is not None else {})}
        return int(self._client.request("POST", f"{self._base}/count", body)["count"])

    def update(
        self,
        ids: Sequence[str] | str,
        *,
        metadata: Sequence[JSONObject | None] | JSONObject | None = None,
        merge: bool = True,
        texts: Sequence[str] | str | None = None,
        vectors: Any = None,
        progress: Any = None,
    ) -> int:
        """Change only what is given of existing items; see
        :meth:`simsearch.Collection.update`."""
        id_list = check_ids(ids)
        n = len(id_list)
        if metadata is None and texts is None and vectors is None:
            raise InvalidArgumentError("give metadata, texts or vectors to change")
        if not isinstance(merge, bool):
            raise InvalidArgumentError(f"merge must be true or false, got {merge!r}")
        body = {
            "ids": id_list,
            "metadata": check_metadata(metadata, n) if metadata is not None else None,
            "merge": merge,
            "texts": check_texts(texts, n) if texts is not None else None,
            "vectors": _vectors(vectors),
        }
        return int(self._client.request("POST", f"{self._base}/update", body)["updated"])

    def search(
        self,
        query: Any,
        *,
        k: int = 10,
        where: Any = None,
        offset: int = 0,
        min_relevance: float | None = None,
        cutoff: str | None = None,
        mode: str = "dense",
        fusion: str = "convex",
        alpha: float | None = None,
        where_text: Any = None,
        progress: Any = None,
        candidates: int | None = None,
    ) -> Results:
        """The k most similar items per query; see :meth:`simsearch.Collection.search`.
        A list of 2-D arrays (or a 3-D array) is a batch of query sets for a multi-vector
        collection, a 2-D array one set there (a batch of vectors elsewhere)."""
        k = check_k(k)
        if isinstance(query, str) or (
            isinstance(query, Sequence) and query and all(isinstance(q, str) for q in query)
        ):
            payload: Any = query if isinstance(query, str) else list(query)
        elif _is_set_batch(query):
            payload = [s.tolist() for s in as_query_sets(query, None)]
        else:
            if isinstance(query, Sequence) and any(isinstance(q, str) for q in query):
                raise InvalidArgumentError("a query batch must be all strings or all vectors")
            payload = as_vector_batch(query, None, what="query vectors").tolist()
        data = self._client.request(
            "POST",
            f"{self._base}/search",
            {
                "query": payload,
                "k": k,
                "where": where,
                **({"offset": offset} if offset else {}),
                "min_relevance": min_relevance,
                "cutoff": cutoff,
                **({"mode": mode, "fusion": fusion, "alpha": alpha} if mode != "dense" else {}),
                **({"candidates": candidates} if candidates is not None else {}),
                **({"where_text": where_text} if where_text is not None else {}),
            },
        )
        rows = [
            [
                Hit(
                    id=h["id"],
                    score=h["score"],
                    metadata=h["metadata"],
                    text=h["text"],
                    relevance=h.get("relevance"),
                    dense_score=h.get("dense_score"),
                    lexical_score=h.get("lexical_score"),
                )
                for h in row
            ]
            for row in data["results"]
        ]
        return Results(k=k, rows=rows)

    def close(self) -> None:
        """Nothing to release: the client holds the connection."""

    def __enter__(self) -> RemoteCollection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
