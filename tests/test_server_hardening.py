"""The server under hostile requests: strict key files, bounded work per request, the key
checked before the body is read, one error shape for every malformed request, damaged or
linked collections, bounded metrics labels, and a slow open that delays only its own name."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

import simsearch
from server_process import KEYS, Server, key_file, running_server
from simsearch.server.app import create_app
from simsearch.server.auth import KeyRing
from simsearch.server.registry import CollectionRegistry
from simsearch.server.schemas import CreateCollection
from simsearch.server.settings import ServerSettings
from simsearch.store import DB_FILENAME

ADMIN = {"Authorization": f"Bearer {KEYS['admin']}"}


def bounded(response: httpx.Response, sent: int) -> bool:
    return len(response.content) <= max(64 * 1024, 4 * sent)


def error_of(response: httpx.Response) -> tuple[int, str]:
    error = response.json()["error"]
    assert isinstance(error["message"], str)
    return response.status_code, str(error["code"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hardening")
    with running_server(root / "data", keys=key_file(root / "keys.json")) as running:
        for name, dim in (("docs", 2), ("other", 2)):
            r = httpx.post(
                f"{running.url}/collections", headers=ADMIN, json={"name": name, "dim": dim}
            )
            assert r.status_code == 201, r.text
        r = httpx.post(
            f"{running.url}/collections/docs/add",
            headers=ADMIN,
            json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "metadata": [{"t": 1}, {}]},
        )
        assert r.status_code == 201, r.text
        yield running


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    """The app in this process, without keys, over a collection 'docs' of 2-d vectors."""
    with simsearch.Collection.open(tmp_path / "data" / "docs", metric="dot", dim=2) as col:
        col.add(["a", "b"], vectors=[[1, 0], [0, 1]])
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as client:
        yield client


# -- (4) the key file -------------------------------------------------------------------------
@pytest.mark.parametrize("admin", ["false", "no", "False", "true", 0, 1, None, []])
def test_admin_must_be_a_json_boolean(admin: Any) -> None:
    entry = {"name": "ops", "key": "long-enough-secret", "admin": admin}
    with pytest.raises(simsearch.InvalidArgumentError, match=r"keys\[0\] \('ops'\)\.admin"):
        KeyRing.from_dict({"keys": [entry]})


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"key": "long-enough-1", "admn": True}],
            r"keys\[0\] \('key-0'\) has an unknown field 'admn'",
        ),
        ([{"name": 7, "key": "long-enough-1"}], r"keys\[0\]\.name must be a non-empty string"),
        ([{"name": "a", "key": 12345678}], r"keys\[0\] \('a'\)\.key must be a string"),
        ([{"name": "a", "key": "short"}], r"8 characters"),
        ([{"name": "a", "key": "long-enough-1", "collections": ["docs"]}], r"collections must map"),
        (
            [{"name": "a", "key": "long-enough-1", "collections": {"docs": True}}],
            r"collections\.docs is True; use 'read' or 'write'",
        ),
        (
            [{"name": "a", "key": "long-enough-1", "collections": {"docs\n": "read"}}],
            r"not a collection name",
        ),
        (
            [{"name": "a", "key": "long-enough-1"}, {"name": "a", "key": "long-enough-2"}],
            r"keys\[1\]: the name 'a' is used by another key",
        ),
        (
            [{"name": "a", "key": "long-enough-1"}, {"name": "b", "key": "long-enough-1"}],
            r"keys\[1\] \('b'\): the same secret is given to another key",
        ),
    ],
)
def test_key_file_entries_are_checked_strictly(entries: list[Any], message: str) -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match=message):
        KeyRing.from_dict({"keys": entries})


def test_key_file_refuses_unknown_top_level_fields_and_keeps_good_ones() -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="unknown field 'key'"):
        KeyRing.from_dict({"keys": [{"key": "long-enough-1"}], "key": "x"})
    ring = KeyRing.from_dict(
        {
            "keys": [
                {"name": "ops", "key": "long-enough-1", "admin": True},
                {
                    "name": "app",
                    "key": "long-enough-2",
                    "admin": False,
                    "collections": {"*": "read"},
                },
            ]
        }
    )
    assert ring.authenticate("long-enough-1").admin
    assert not ring.authenticate("long-enough-2").admin


# -- (5) bounded work per request ------------------------------------------------------------
def test_search_is_bounded_in_queries_and_hits(server: Server) -> None:
    url = f"{server.url}/collections/docs/search"
    r = httpx.post(url, headers=ADMIN, json={"query": [[1.0, 0.0]] * 1001, "k": 1})
    assert error_of(r) == (413, "payload_too_large"), r.text
    assert "1,000" in r.json()["error"]["message"]
    r = httpx.post(url, headers=ADMIN, json={"query": [[1.0, 0.0]] * 101, "k": 1000})
    assert error_of(r) == (413, "payload_too_large"), r.text
    r = httpx.post(url, headers=ADMIN, json={"query": [[1.0, 0.0]] * 100, "k": 1000})
    assert r.status_code == 200, r.text
    spec = httpx.get(f"{server.url}/openapi.json").json()
    search = spec["paths"]["/collections/{name}/search"]["post"]["description"]
    assert "1,000 queries" in search
    assert "100,000 hits" in search
    assert "1,000,000 characters" in spec["paths"]["/collections/{name}/add"]["post"]["description"]
    assert "Request limits" in spec["info"]["description"]


def test_embedding_work_is_bounded_before_any_is_done(
    local: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        reached.append("library")
        raise simsearch.InvalidArgumentError("the library was reached")

    for method in ("add", "upsert", "search"):
        monkeypatch.setattr(simsearch.Collection, method, refuse)
    many = [""] * 1001
    long = ["x" * 600_000, "y" * 600_000]
    cases = [
        ("add", {"ids": [str(i) for i in range(1001)], "texts": many}),
        ("upsert", {"ids": ["p", "q"], "texts": long}),
        ("search", {"query": many}),
        ("search", {"query": "z" * 1_000_001}),
        ("search", {"query": long}),
    ]
    for op, body in cases:
        r = local.post(f"/collections/docs/{op}", json=body)
        assert error_of(r) == (413, "payload_too_large"), (op, r.text)
    assert reached == []
    r = local.post("/collections/docs/search", json={"query": ["fine"] * 1000, "k": 100})
    assert reached == ["library"], r.text


def test_small_limits_come_from_the_settings(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "data" / "docs", metric="dot", dim=2) as col:
        col.add(["a"], vectors=[[1, 0]])
    settings = ServerSettings(data_dir=tmp_path / "data", max_queries=2, max_results=5)
    with TestClient(create_app(settings)) as client:
        ok = client.post("/collections/docs/search", json={"query": [[1, 0], [0, 1]], "k": 2})
        assert ok.status_code == 200
        for body in ({"query": [[1, 0]] * 3, "k": 1}, {"query": [[1, 0]] * 2, "k": 3}):
            r = client.post("/collections/docs/search", json=body)
            assert error_of(r) == (413, "payload_too_large"), r.text


def test_validation_errors_quote_nothing_and_stay_small(server: Server) -> None:
    url = f"{server.url}/collections/docs/add"
    bodies = [
        {"ids": [{"x": "leak-me"}] * 10_000},  # ten thousand bad elements
        {"ids": ["a"], "vectors": [[1, 1]], "k": "leak-me" * 100_000},  # one huge bad value
        {"ids": ["a"], "vectors": "leak-me" * 100_000},
    ]
    for body in bodies:
        raw = json.dumps(body).encode()
        r = httpx.post(url, headers={**ADMIN, "Content-Type": "application/json"}, content=raw)
        assert error_of(r) == (400, "invalid_input"), r.text[:500]
        assert len(r.content) < 2_000
        assert "leak-me" not in r.text
    many = httpx.post(url, headers=ADMIN, json=bodies[0]).json()["error"]["message"]
    assert "(and 9997 more)" in many


def _raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    """Send ``head`` and ``body`` over a bare socket and return what comes back within 10 s
    (the server is expected to answer without waiting for the rest of a declared body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        return received


def test_a_protected_route_answers_401_before_reading_the_body(server: Server) -> None:
    # Ten megabytes are announced and none sent: a server that read the body would wait.
    for key_header in ("", "\r\nAuthorization: Bearer not-a-real-key-123"):
        started = time.perf_counter()
        answer = _raw_request(
            server.url,
            "POST /collections/docs/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: 10000000{key_header}",
            b'{"ids": [',
        )
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert time.perf_counter() - started < 5
    # An over-long declared body is refused without reading it too (once the key is good).
    answer = _raw_request(
        server.url,
        "POST /collections/docs/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 40000000\r\nAuthorization: Bearer {KEYS['admin']}",
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    for path in ("/health", "/", "/static/app.js", "/openapi.json", "/docs"):
        assert httpx.get(server.url + path).status_code == 200, path


def test_the_gate_does_not_call_receive_without_a_key(tmp_path: Path) -> None:
    import asyncio

    keys = KeyRing.from_file(key_file(tmp_path / "keys.json"))
    app = create_app(ServerSettings(data_dir=tmp_path / "data", keys=keys))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read before the key was checked")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/collections/docs/search",
        "raw_path": b"/collections/docs/search",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"5")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == 401


# -- (12) every malformed request gets a 4xx in the error shape -------------------------------
MALFORMED = [
    ("search", b'{"query": [1, 0], "k": NaN}', "application/json"),
    ("search", b'{"query": [1, 0], "k": Infinity}', "application/json"),
    ("search", b'{"query": [1, 0], "k": -Infinity}', "application/json"),
    ("search", b'{"query": [1, 0], "min_relevance": 1e400}', "application/json"),
    ("search", b'{"query": [1, NaN]}', "application/json"),
    ("search", b'{"query": [1, 0], "where": {"a\\u0000b": 1}}', "application/json"),
    (
        "search",
        b'{"query": [1, 0], "where": {"$and": [{"a\\u0000": {"$gt": 1}}]}}',
        "application/json",
    ),
    ("delete", b'{"where": {"a\\u0000b": 1}}', "application/json"),
    ("get", b'{"ids": [NaN]}', "application/json"),
    ("get", b'{"ids": ["\\ud800"]}', "application/json"),
    ("add", b'{"ids": ["n"], "vectors": [[1, 1e400]]}', "application/json"),
    ("add", b'{"ids": ["n"], "vectors": [[1, 1]], "metadata": [{"x": NaN}]}', "application/json"),
    ("add", b'{"ids": [', "application/json"),
    ("add", b'{"ids": ["n"]} trailing', "application/json"),
    ("add", b"\xff\xfe not utf-8", "application/json"),
    ("add", b"[]", "application/json"),
    ("add", b"null", "application/json"),
    ("add", b"", "application/json"),
    ("add", b'{"ids": ["n"], "vectors": [[1, 1]]}', "text/plain"),
    ("add", b'{"ids": ["n"], "vectors": [[1, 1]]}', ""),
    ("add", b"ids=n", "application/x-www-form-urlencoded"),
    ("add", b'{"ids": ["n"], "vectors": [[1, 1]]}', "application/xml"),
    ("add", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("", b'{"name": "c", "dim": Infinity}', "application/json"),
    ("", b'{"name": "c", "dim": 1e400}', "application/json"),
    ("", b'{"name": "c\\n", "dim": 2}', "application/json"),
]


@pytest.mark.parametrize(("op", "body", "content_type"), MALFORMED)
def test_malformed_requests_get_400_in_the_error_shape(
    server: Server, op: str, body: bytes, content_type: str
) -> None:
    before = httpx.get(f"{server.url}/collections", headers=ADMIN).json()
    path = f"/collections/docs/{op}" if op else "/collections"
    headers = {**ADMIN, "Content-Type": content_type} if content_type else ADMIN
    r = httpx.post(server.url + path, headers=headers, content=body)
    assert error_of(r)[0] == 400, r.text[:300]
    assert bounded(r, len(body))
    assert httpx.get(f"{server.url}/collections", headers=ADMIN).json() == before


def test_unknown_routes_and_methods_answer_in_the_error_shape(server: Server) -> None:
    assert error_of(httpx.get(f"{server.url}/static/nothing.js")) == (404, "not_found")
    assert error_of(httpx.get(f"{server.url}/nowhere", headers=ADMIN)) == (404, "not_found")
    r = httpx.put(f"{server.url}/collections/docs", headers=ADMIN)
    assert error_of(r) == (405, "method_not_allowed")
    assert error_of(httpx.get(f"{server.url}/nowhere")) == (401, "unauthenticated")


def test_the_request_limits_are_set_from_the_command_line(tmp_path: Path) -> None:
    flags = ["--max-queries", "2", "--max-results", "10", "--max-texts", "3"]
    with running_server(tmp_path / "data", extra=flags) as small:
        httpx.post(small.url + "/collections", json={"name": "c", "dim": 2}).raise_for_status()
        search = small.url + "/collections/c/search"
        assert httpx.post(search, json={"query": [[1, 0]] * 2, "k": 5}).status_code == 200
        for body in ({"query": [[1, 0]] * 3, "k": 1}, {"query": [[1, 0]] * 2, "k": 6}):
            assert error_of(httpx.post(search, json=body)) == (413, "payload_too_large")
        texts = {"ids": list("abcd"), "texts": ["w"] * 4}
        r = httpx.post(small.url + "/collections/c/add", json=texts)
        assert error_of(r) == (413, "payload_too_large")


# -- (19) chunked bodies over the limit ------------------------------------------------------
def test_a_chunked_body_over_the_limit_gets_413(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", extra=["--max-body-mb", "0.01"]) as small:
        httpx.post(small.url + "/collections", json={"name": "c", "dim": 2}).raise_for_status()

        def chunks(n: int) -> Iterator[bytes]:
            yield b'{"ids": ["a"], "vectors": [[1, 2]], "metadata": [{"pad": "'
            for _ in range(n):
                yield b"x" * 1024
            yield b'"}]}'

        r = httpx.post(
            small.url + "/collections/c/add",
            content=chunks(20),
            headers={"Content-Type": "application/json"},
        )
        assert error_of(r) == (413, "payload_too_large"), r.text
        assert httpx.get(small.url + "/collections/c").json()["count"] == 0
        r = httpx.post(
            small.url + "/collections/c/add",
            content=chunks(2),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text


# -- (20) bounded metrics labels -------------------------------------------------------------
def test_metrics_labels_come_from_fixed_sets(server: Server) -> None:
    for i in range(15):
        httpx.request(f"BREW{i}", f"{server.url}/collections/docs/search")
        httpx.request(f"FOO{i}", f"{server.url}/made-up/{i}")
        httpx.get(f"{server.url}/made-up-{i}", headers=ADMIN)
    httpx.post(f"{server.url}/collections/docs/search", json={"query": [1, 0]})  # no key: 401
    text = httpx.get(f"{server.url}/metrics", headers=ADMIN).text
    templates = set(httpx.get(f"{server.url}/openapi.json").json()["paths"])
    templates |= {"/", "/static", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
    methods, paths = set(), set()
    for line in text.splitlines():
        if line.startswith("simsearch_"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            methods.add(labels["method"])
            paths.add(labels["path"])
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"}
    assert "OTHER" in methods
    assert paths <= templates | {"other"}
    assert "other" in paths
    assert (
        'simsearch_requests_total{method="POST",path="/collections/{name}/search",status="401"}'
        in text
    )


# -- (22) names matched whole, linked collections, the key kept per tab ------------------------
def test_a_name_with_a_trailing_newline_is_not_a_collection_name(tmp_path: Path) -> None:
    registry = CollectionRegistry(tmp_path)
    with pytest.raises(simsearch.InvalidArgumentError, match="invalid collection name"):
        registry.get("docs\n")
    with pytest.raises(ValueError, match="pattern"):
        CreateCollection(name="docs\n")
    with simsearch.Collection.open(tmp_path / "data" / "docs\n", metric="dot", dim=2) as col:
        col.add(["a"], vectors=[[1, 0]])
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as client:
        assert client.get("/collections").json() == []
        r = client.get("/collections/docs%0A")
        assert error_of(r) == (400, "invalid_argument"), r.text


def test_deleting_a_linked_collection_is_refused_and_keeps_its_data(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "real"
    with simsearch.Collection.open(target, metric="dot", dim=2) as col:
        col.add(["a"], vectors=[[1, 0]])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "linked").symlink_to(target, target_is_directory=True)
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as client:
        assert client.get("/collections/linked").json()["count"] == 1
        r = client.delete("/collections/linked")
        assert error_of(r) == (403, "permission_denied"), r.text
        assert "symbolic link" in r.json()["error"]["message"]
        assert client.get("/collections/linked").json()["count"] == 1
    assert (target / DB_FILENAME).is_file()
    assert (tmp_path / "data" / "linked").is_symlink()


# -- (13) a damaged collection does not break the listing ------------------------------------
def test_the_listing_shows_damaged_collections_with_their_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("good", "truncated", "garbage", "empty"):
        with simsearch.Collection.open(data / name, metric="dot", dim=2) as col:
            col.add(["a", "b"], vectors=[[1, 0], [0, 1]])
    with sqlite3.connect(data / "truncated" / DB_FILENAME) as con:
        con.execute("UPDATE items SET vector = substr(vector, 1, 3)")
    con.close()
    with open(data / "garbage" / DB_FILENAME, "r+b") as f:
        f.write(os.urandom(4096))  # the header and the first page
    for leftover in (data / "empty").iterdir():
        if leftover.is_file():
            leftover.unlink()
    (data / "empty" / DB_FILENAME).write_bytes(b"")
    with TestClient(create_app(ServerSettings(data_dir=data))) as client:
        with pytest.warns(RuntimeWarning, match="vectors that are not 2-d"):
            r = client.get("/collections")
        assert r.status_code == 200, r.text
        listed = {c["name"]: c for c in r.json()}
        assert set(listed) == {"good", "truncated", "garbage", "empty"}
        assert listed["good"]["count"] == 2
        assert listed["good"]["error"] is None
        # Damaged rows are left out of search; the rest of the collection stays readable.
        assert listed["truncated"]["error"] is None
        hits = client.post("/collections/truncated/search", json={"query": [1, 0]})
        assert hits.json() == {"results": [[]]}
        for name in ("garbage", "empty"):
            broken = listed[name]
            assert broken["error"]["code"] == "collection_corrupt", broken
            assert broken["count"] is None
            assert broken["metric"] is None
            r = client.get(f"/collections/{name}")
            assert error_of(r) == (500, "collection_corrupt"), r.text
        assert client.post("/collections/good/search", json={"query": [1, 0]}).status_code == 200
    assert (data / "empty" / DB_FILENAME).stat().st_size == 0  # a read wrote nothing into it


# -- (9) a slow open delays only requests for the same collection ----------------------------
def test_a_slow_open_does_not_block_other_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for name in ("fast", "slow"):
        with simsearch.Collection.open(data / name, metric="dot", dim=2) as col:
            col.add(["a"], vectors=[[1, 0]])
    opening, release = threading.Event(), threading.Event()
    opens: list[str] = []
    real_open = simsearch.Collection.open

    def slow_open(path: Any, **kwargs: Any) -> simsearch.Collection:
        opens.append(Path(path).name)
        if Path(path).name == "slow":  # as if another process held the collection's lock
            opening.set()
            release.wait(15)
        return real_open(path, **kwargs)

    monkeypatch.setattr("simsearch.server.registry.Collection.open", slow_open)
    query = {"query": [1, 0], "k": 1}
    with TestClient(create_app(ServerSettings(data_dir=data))) as client:
        assert client.post("/collections/fast/search", json=query).status_code == 200
        answers: list[int] = []

        def search_slow() -> None:
            answers.append(client.post("/collections/slow/search", json=query).status_code)

        waiting = [threading.Thread(target=search_slow) for _ in range(2)]
        for thread in waiting:
            thread.start()
        assert opening.wait(10)
        started = time.perf_counter()
        for _ in range(3):
            assert client.post("/collections/fast/search", json=query).status_code == 200
        assert client.get("/collections/fast").status_code == 200
        elapsed = time.perf_counter() - started
        release.set()
        for thread in waiting:
            thread.join(20)
        assert elapsed < 3, f"searches on another collection waited {elapsed:.1f} s"
        assert answers == [200, 200]
        assert opens.count("slow") == 1  # the second request waited for the first open


# -- delete all ------------------------------------------------------------------------------
def test_delete_all_goes_through_the_server_and_the_client(server: Server) -> None:
    url = f"{server.url}/collections/other"
    ids = [f"i{n}" for n in range(5)]
    httpx.post(f"{url}/upsert", headers=ADMIN, json={"ids": ids, "vectors": [[1, 0]] * 5})
    r = httpx.post(f"{url}/delete", headers=ADMIN, json={"where": {}})
    assert error_of(r) == (400, "invalid_argument"), r.text
    r = httpx.post(f"{url}/delete", headers=ADMIN, json={"all": True})
    assert r.json() == {"deleted": 5}, r.text
    other = simsearch.Client(server.url, api_key=KEYS["admin"]).collection("other")
    other.upsert(ids, vectors=[[1, 0]] * 5)
    with pytest.raises(simsearch.InvalidArgumentError):
        other.delete(where={})
    with pytest.raises(simsearch.InvalidArgumentError):
        other.delete(["i1"], all=True)
    assert other.delete(all=True) == 5
    assert len(other) == 0


# -- found by a later review -----------------------------------------------------------------
def test_an_answer_much_larger_than_its_request_is_refused(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path / "data", max_response_bytes=200_000)
    with TestClient(create_app(settings)) as client:
        client.post("/collections", json={"name": "c", "metric": "dot", "dim": 2})
        big = {"pad": "x" * 20_000}
        body = {
            "ids": [str(i) for i in range(20)],
            "vectors": [[1, 0]] * 20,
            "metadata": [big] * 20,
        }
        assert client.post("/collections/c/add", json=body).status_code == 201
        small = client.post("/collections/c/search", json={"query": [1, 0], "k": 5})
        assert small.status_code == 200, small.text
        r = client.post("/collections/c/search", json={"query": [[1, 0]] * 10, "k": 20})
        assert error_of(r) == (413, "payload_too_large")
        assert len(r.content) < 1000
        r = client.post("/collections/c/get", json={"ids": [str(i) for i in range(20)]})
        assert error_of(r) == (413, "payload_too_large")


def test_error_messages_name_collections_not_server_paths(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with TestClient(create_app(ServerSettings(data_dir=data))) as client:
        client.post("/collections", json={"name": "c", "metric": "dot", "dim": 2})
        client.post("/collections/c/add", json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]]})
        r = client.post("/collections/c/search", json={"query": [1, 0], "min_relevance": 0.5})
        assert error_of(r) == (409, "not_calibrated")
        assert str(tmp_path) not in r.text
