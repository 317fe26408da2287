"""The HTTP server: the whole API-key matrix, error mapping, limits and the served page."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import simsearch
from server_process import KEYS, Server, key_file


def call(
    server: Server, method: str, path: str, key: str | None, body: Any = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEYS[key]}"} if key in KEYS else {}
    if key == "wrong":
        headers = {"Authorization": "Bearer not-a-real-key-123"}
    return httpx.request(method, server.url + path, headers=headers, json=body, timeout=60)


@pytest.fixture(scope="module")
def docs(keyed_server: Server) -> Server:
    for name in ("docs", "other"):
        call(keyed_server, "DELETE", f"/collections/{name}", "admin")
        r = call(
            keyed_server, "POST", "/collections", "admin", {"name": name, "metric": "dot", "dim": 2}
        )
        assert r.status_code == 201, r.text
    r = call(
        keyed_server,
        "POST",
        "/collections/docs/add",
        "admin",
        {"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "metadata": [{"t": 1}, {"t": 2}]},
    )
    assert r.status_code == 201, r.text
    return keyed_server


SEARCH = ("POST", "/collections/docs/search", {"query": [1, 0], "k": 1})
WRITE = ("POST", "/collections/docs/upsert", {"ids": ["w"], "vectors": [[0.5, 0.5]]})
DELETE_ITEMS = ("POST", "/collections/docs/delete", {"ids": ["nothing-here"]})
INFO = ("GET", "/collections/docs", None)
CREATE = ("POST", "/collections", {"name": "made-by-test", "dim": 2})
DROP = ("DELETE", "/collections/made-by-test", None)

MATRIX = [
    # (who, request, expected status)
    (None, SEARCH, 401),
    (None, WRITE, 401),
    (None, INFO, 401),
    (None, CREATE, 401),
    ("wrong", SEARCH, 401),
    ("wrong", WRITE, 401),
    ("wrong", CREATE, 401),
    ("reader", SEARCH, 200),
    ("reader", INFO, 200),
    ("reader", WRITE, 403),
    ("reader", DELETE_ITEMS, 403),
    ("reader", CREATE, 403),
    ("writer", SEARCH, 200),
    ("writer", WRITE, 200),
    ("writer", DELETE_ITEMS, 200),
    ("writer", CREATE, 403),
    ("writer", DROP, 403),
    ("other", SEARCH, 403),
    ("other", WRITE, 403),
    ("other", INFO, 403),
    ("all-read", SEARCH, 200),
    ("all-read", WRITE, 403),
    ("admin", SEARCH, 200),
    ("admin", WRITE, 200),
    ("admin", CREATE, 201),
    ("admin", DROP, 204),
]


@pytest.mark.parametrize(
    ("who", "request_", "status"),
    MATRIX,
    ids=[f"{m[0]}-{m[1][0]}-{m[1][1].rsplit('/', 1)[-1]}-{m[2]}" for m in MATRIX],
)
def test_auth_matrix(
    docs: Server, who: str | None, request_: tuple[str, str, Any], status: int
) -> None:
    method, path, body = request_
    r = call(docs, method, path, who, body)
    assert r.status_code == status, r.text
    if status in (401, 403):
        code = r.json()["error"]["code"]
        assert code == ("unauthenticated" if status == 401 else "permission_denied")
        assert KEYS.get(who or "", "@@") not in r.text


def test_x_api_key_header_works_too(docs: Server) -> None:
    r = httpx.post(
        docs.url + "/collections/docs/search",
        json={"query": [1, 0]},
        headers={"X-API-Key": KEYS["reader"]},
    )
    assert r.status_code == 200


def test_listing_shows_only_what_a_key_may_read(docs: Server) -> None:
    names = lambda key: {c["name"] for c in call(docs, "GET", "/collections", key).json()}  # noqa: E731
    assert names("reader") == {"docs"}
    assert names("other") == {"other"}
    assert {"docs", "other"} <= names("admin")
    assert call(docs, "GET", "/collections", None).status_code == 401


def test_health_is_open_and_metrics_count_requests(docs: Server) -> None:
    assert call(docs, "GET", "/health", None).json()["status"] == "ok"
    text = call(docs, "GET", "/metrics", "reader").text
    assert (
        'simsearch_requests_total{method="POST",path="/collections/{name}/search",status="200"}'
        in text
    )


def test_errors_carry_status_and_code_and_write_nothing(docs: Server) -> None:
    before = call(docs, "GET", "/collections/docs", "admin").json()
    cases = [
        ("/collections/docs/add", {"ids": ["a"], "vectors": [[1, 1]]}, 409, "duplicate_id"),
        (
            "/collections/docs/add",
            {"ids": ["n1", "n2"], "vectors": [[1, 1], [1, 2, 3]]},
            400,
            "invalid_vector",
        ),
        (
            "/collections/docs/add",
            {"ids": ["n1"], "vectors": [[1, 2, 3]]},
            400,
            "dimension_mismatch",
        ),
        (
            "/collections/docs/add",
            {"ids": ["n1", "n1"], "vectors": [[1, 1], [1, 1]]},
            400,
            "invalid_id",
        ),
        (
            "/collections/docs/search",
            {"query": [1, 0], "where": {"t": {"$bad": 1}}},
            400,
            "invalid_filter",
        ),
        ("/collections/docs/get", {"ids": ["zzz"]}, 404, "item_not_found"),
        ("/collections/nope/search", {"query": [1, 0]}, 404, "collection_not_found"),
        ("/collections", {"name": "docs", "dim": 2}, 409, "collection_exists"),
    ]
    for path, body, status, code in cases:
        r = call(docs, "POST", path, "admin", body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)
    # A body that does not fit the schema is invalid input like any other (400, one shape).
    r = call(docs, "POST", "/collections/docs/add", "admin", {"ids": "not-a-list"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_input"), r.text
    r = call(
        docs,
        "POST",
        "/collections/docs/add",
        "admin",
        {"ids": ["x"], "vectors": [[1, 1]], "bogus": 1},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_input"), r.text
    assert "bogus" in r.json()["error"]["message"]
    after = call(docs, "GET", "/collections/docs", "admin").json()
    assert after["count"] == before["count"]
    assert after["seq"] == before["seq"]


def test_body_size_limit(tmp_path: Path) -> None:
    from server_process import running_server

    with running_server(tmp_path / "data", extra=["--max-body-mb", "0.01"]) as server:
        httpx.post(server.url + "/collections", json={"name": "c", "dim": 2}).raise_for_status()
        big = {"ids": [f"i{n}" for n in range(2000)], "vectors": [[1.0, 2.0]] * 2000}
        r = httpx.post(server.url + "/collections/c/add", json=big)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"
        assert httpx.get(server.url + "/collections/c").json()["count"] == 0


def test_the_page_and_openapi_are_served(docs: Server) -> None:
    page = httpx.get(docs.url + "/")
    assert page.status_code == 200
    assert "simsearch" in page.text
    assert "app.js" in page.text
    assert httpx.get(docs.url + "/static/app.js").status_code == 200
    spec = httpx.get(docs.url + "/openapi.json").json()
    assert "/collections/{name}/search" in spec["paths"]


def test_keys_never_reach_the_log(docs: Server) -> None:
    for key in KEYS.values():
        assert key not in docs.output()


def test_refuses_public_bind_without_keys(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "serve", str(tmp_path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "refusing to serve 0.0.0.0 without API keys" in r.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ('{"keys": []}', "holds no keys"),
        ('{"keys": [{"key": "short"}]}', "8 characters"),
        ('{"keys": [{"key": "longenough", "collections": {"a": "own"}}]}', "'read' or 'write'"),
        ('{"keys": [{"key": "longenough", "admin": "false"}]}', "admin must be true or false"),
        ('{"keys": [{"key": "longenough", "admn": true}]}', "unknown field 'admn'"),
        ('{"keys": [{"key": "longenough", "admin": false, "admin": true}]}', "'admin' twice"),
        ('{"keys": [{"key": "longenough"}], "keys": []}', "'keys' twice"),
        ('{"keys": [{"key": "cl\u00e9-secr\u00e8te-1"}]}', "printable ASCII"),
        ('{"keys": [{"key": "  padded-key  "}]}', "no space at either end"),
        ('{"keys": [{"key": "        "}]}', "no space at either end"),
    ],
)
def test_bad_key_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(content)
    r = subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "serve", str(tmp_path), "--api-keys", str(keys)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert message in r.stderr


def test_client_rebuilds_error_classes(docs: Server) -> None:
    client = simsearch.Client(docs.url, api_key=KEYS["reader"])
    col = client.collection("docs")
    with pytest.raises(simsearch.PermissionDeniedError):
        col.add(["z"], vectors=[[1, 1]])
    with pytest.raises(simsearch.PermissionDeniedError):
        client.collection("nope")  # a key learns nothing about collections outside its scope
    with pytest.raises(simsearch.CollectionNotFoundError):
        simsearch.Client(docs.url, api_key=KEYS["all-read"]).collection("nope")
    with pytest.raises(simsearch.AuthenticationError):
        simsearch.Client(docs.url, api_key="nonsense-key-000").collection("docs")
    assert col.search([1, 0], k=1)[0][0].id == "a"


def test_a_collection_is_created_with_the_index_kind_asked_for(docs: Server) -> None:
    from typing import get_args

    from simsearch.config import INDEX_NAMES
    from simsearch.server.schemas import CreateCollection

    assert get_args(CreateCollection.model_fields["index"].annotation) == INDEX_NAMES
    call(docs, "DELETE", "/collections/graph", "admin")
    body = {"name": "graph", "dim": 2, "index": "hnsw"}
    made = call(docs, "POST", "/collections", "admin", body)
    assert made.status_code == 201, made.text
    assert made.json()["index"] == "hnsw"
    assert made.json()["migration"] is None
    vectors = [[1.0, float(i)] for i in range(30)]
    added = call(
        docs,
        "POST",
        "/collections/graph/add",
        "admin",
        {"ids": [str(i) for i in range(30)], "vectors": vectors},
    )
    assert added.status_code == 201, added.text
    hits = call(docs, "POST", "/collections/graph/search", "admin", {"query": [1, 29], "k": 1})
    assert hits.json()["results"][0][0]["id"] == "29"
    assert call(docs, "GET", "/collections/graph", "admin").json()["index"] == "hnsw"
    assert call(docs, "GET", "/collections", "admin").json()[0]["index"] in INDEX_NAMES
    bad = call(
        docs, "POST", "/collections", "admin", {"name": "annoyed", "dim": 2, "index": "annoy"}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_input")
    assert call(docs, "GET", "/collections/annoyed", "admin").status_code == 404
    call(docs, "DELETE", "/collections/graph", "admin")


def test_a_key_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from simsearch.server.auth import KeyRing

    keys = key_file(tmp_path / "keys.json")
    with caplog.at_level(logging.WARNING, logger="simsearch.server"):
        KeyRing.from_file(keys)
    assert not caplog.records
    keys.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="simsearch.server"):
        KeyRing.from_file(keys)
    assert "can be read by other users" in caplog.text
    assert "chmod 600" in caplog.text
