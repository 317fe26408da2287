"""The server's search lane: a well-formed search is answered without FastAPI's routing, the
same as the route answers it; anything else reaches the route and gets its answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

import simsearch
from server_process import KEYS, key_file
from simsearch.server.app import create_app
from simsearch.server.auth import KeyRing
from simsearch.server.search_lane import SEARCH_PATH
from simsearch.server.settings import ServerSettings


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, list[str], np.ndarray]]:
    """A keyed server over a "docs" collection of 40 vectors, and a log of the requests
    that reached the search route (not the lane)."""
    data = tmp_path / "data"
    vectors = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    with simsearch.Collection.open(data / "docs", metric="cosine", index=simsearch.Flat()) as col:
        col.add(
            [f"d{i}" for i in range(40)],
            vectors=vectors,
            metadata=[{"n": i} for i in range(40)],
            progress=False,
        )
    keys = KeyRing.from_file(key_file(tmp_path / "keys.json"))
    app = create_app(ServerSettings(data_dir=data, keys=keys))
    (route,) = [r for r in app.routes if getattr(r, "path", None) == SEARCH_PATH]
    routed: list[str] = []
    handle = route.app  # type: ignore[attr-defined]

    async def noted(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await handle(scope, receive, send)

    route.app = noted  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, routed, vectors


def test_a_valid_search_takes_the_lane_and_answers_as_the_collection_does(
    served: tuple[TestClient, list[str], np.ndarray], tmp_path: Path
) -> None:
    client, routed, vectors = served
    body = {"query": vectors[3].tolist(), "k": 5, "where": {"n": {"$gte": 10}}, "offset": 1}
    r = client.post("/collections/docs/search", json=body, headers=_auth("reader"))
    assert r.status_code == 200, r.text
    assert routed == []  # answered by the lane
    hits = r.json()["results"][0]
    with simsearch.Collection.open(tmp_path / "data" / "docs") as col:
        want = col.search(vectors[3], k=5, where={"n": {"$gte": 10}}, offset=1)[0]
    assert [h["id"] for h in hits] == [h.id for h in want]
    assert [h["metadata"] for h in hits] == [h.metadata for h in want]
    assert set(hits[0]) == {
        "id", "score", "metadata", "text", "relevance", "dense_score", "lexical_score",
    }  # fmt: skip
    metrics = client.get("/metrics", headers=_auth("admin")).text
    assert 'method="POST",path="/collections/{name}/search",status="200"} 1' in metrics


@pytest.mark.parametrize(
    ("content", "content_type", "problem"),
    [
        (b'{"query": [1, 2], "k": 0}', "application/json", "k"),
        (b'{"query": [1, 2], "k": 3, "nope": 1}', "application/json", "nope"),
        (b'{"query": [NaN, 1.0]}', "application/json", "not valid JSON"),
        (b'{"query": [1, 2]', "application/json", "not valid JSON"),
        (b'{"query": [1, 2]}', "text/plain", "Content-Type: application/json"),
        (b"", "application/json", "body"),
    ],
)
def test_a_body_the_schema_refuses_reaches_the_route_and_gets_its_error(
    served: tuple[TestClient, list[str], np.ndarray],
    content: bytes,
    content_type: str,
    problem: str,
) -> None:
    client, routed, _ = served
    headers = {**_auth("reader"), "Content-Type": content_type}
    r = client.post("/collections/docs/search", content=content, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"
    assert problem in r.json()["error"]["message"]
    assert routed == ["/collections/docs/search"]


def test_errors_in_the_lane_take_the_apps_shape(
    served: tuple[TestClient, list[str], np.ndarray], tmp_path: Path
) -> None:
    client, routed, vectors = served
    query = {"query": vectors[0].tolist(), "k": 3}
    cases = [
        ("docs", query, _auth("other"), 403, "permission_denied"),
        ("docs", query, {}, 401, "unauthenticated"),
        ("docs", {"query": [1.0, 2.0], "k": 3}, _auth("reader"), 400, "dimension_mismatch"),
        ("docs", {**query, "where": {"n": {"$regex": 1}}}, _auth("reader"), 400, "invalid_filter"),
        ("docs", {**query, "k": 1000, "query": [query["query"]] * 1000}, _auth("reader"), 413,
         "payload_too_large"),
        ("absent", query, _auth("all-read"), 404, "collection_not_found"),
    ]  # fmt: skip
    for name, body, headers, status, code in cases:
        r = client.post(f"/collections/{name}/search", json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
        assert str(tmp_path) not in r.text  # no server path in a message
    assert routed == []
