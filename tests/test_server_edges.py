"""The server's edges: offline API docs, one error shape, the access log, `serve` start-up
(bind before announcing, a missing folder), and a client that names an unreachable server."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import simsearch
from server_process import KEYS, free_port, key_file, running_server, serving_in_thread
from simsearch.server.app import create_app
from simsearch.server.auth import KeyRing
from simsearch.server.settings import ServerSettings

EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TestClient]:
    keys = KeyRing.from_file(key_file(tmp_path / "keys.json"))
    app = create_app(ServerSettings(data_dir=tmp_path / "data", keys=keys, access_log=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]""", html
    )


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_the_api_docs_name_no_other_host_and_their_assets_are_served(
    local: TestClient, page: str
) -> None:
    r = local.get(page)  # no key: the documentation is open, as the page is
    assert r.status_code == 200
    assert not EXTERNAL.search(r.text), EXTERNAL.findall(r.text)
    for asset in _assets(r.text):
        assert asset.startswith("/"), asset
        fetched = local.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100, asset


def test_swagger_ui_script_is_the_full_bundle(local: TestClient) -> None:
    (script,) = [a for a in _assets(local.get("/docs").text) if a.endswith(".js")]
    body = local.get(script).text
    assert "SwaggerUIBundle" in body
    assert len(body) > 500_000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("GET", "/docs-assets/nothing.js"),
        ("POST", "/docs-assets/swagger-ui.css"),
        ("POST", "/docs"),
        ("POST", "/health"),
        ("DELETE", "/"),
        ("GET", "/static/nothing.css"),
        ("PUT", "/collections/docs"),
        ("GET", "/collections/docs/search"),
        ("PATCH", "/collections"),
        ("POST", "/collections/docs/search"),
    ],
)
def test_every_refusal_is_in_the_error_shape(local: TestClient, method: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    r = local.request(method, path, headers=headers)
    assert r.status_code >= 400
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body


def test_the_page_answers_head(local: TestClient) -> None:
    assert local.head("/").status_code == 200


def test_the_access_log_has_one_line_per_request_and_no_key(
    local: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = KEYS["admin"]
    with caplog.at_level(logging.INFO, logger="simsearch.access"):
        local.get("/health")
        local.get("/collections", headers={"Authorization": f"Bearer {secret}"})
        local.get("/collections", headers={"X-API-Key": secret})
        local.get(f"/collections?api_key={secret}")  # no key taken from here: 401
        local.get("/a%0Aforged 200 line")  # a decoded newline may not start a line
    lines = [r.getMessage() for r in caplog.records if r.name == "simsearch.access"]
    assert len(lines) == 5, lines
    assert re.fullmatch(r"\S+ GET /health 200 \d+\.\d ms", lines[0]), lines[0]
    assert " GET /collections 200 " in lines[1]
    assert " GET /collections 200 " in lines[2]
    assert " GET /collections 401 " in lines[3]
    assert "\n" not in lines[4]
    assert "/a\\nforged" in lines[4]
    assert all(secret not in line for line in lines)


def test_the_access_log_is_off_unless_asked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        TestClient(create_app(ServerSettings(data_dir=tmp_path))) as client,
        caplog.at_level(logging.INFO, logger="simsearch.access"),
    ):
        client.get("/health")
    assert not [r for r in caplog.records if r.name == "simsearch.access"]


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simsearch.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_logs_each_request_unless_told_not_to(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with running_server(tmp_path / "data", create=False) as server:
        httpx.get(server.url + "/health").raise_for_status()
        httpx.get(server.url + "/nowhere")
        # A line is written once its response has gone out: give the server a moment.
        deadline = time.monotonic() + 10
        while "/nowhere" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        output = server.output()
    assert f"Serving {tmp_path / 'data'} on {server.url} (no API keys)" in output
    assert re.search(r"GET /health 200 \d+\.\d ms", output), output
    assert "GET /nowhere 404" in output
    with running_server(tmp_path / "data", extra=["--no-access-log"]) as quiet:
        httpx.get(quiet.url + "/health").raise_for_status()
        # An unknown method reaches the app (whichever HTTP parser is installed) and gets
        # an answer in the error shape.
        r = httpx.request("BREW", quiet.url + "/health")
        assert r.status_code == 405
        assert r.json()["error"]["code"] == "method_not_allowed"
        assert "GET /health" not in quiet.output()


def test_serve_on_a_port_in_use_says_so_without_announcing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = _serve(str(tmp_path / "data"), "--port", str(port))
    assert run.returncode == 1
    assert "Serving" not in run.stderr + run.stdout
    assert f"port {port}" in run.stderr
    assert "in use" in run.stderr
    assert "Traceback" not in run.stderr


def test_serve_refuses_a_missing_folder_unless_told_to_create_it(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    run = _serve(str(missing), "--port", str(free_port()))
    assert run.returncode == 1
    assert "--create" in run.stderr
    assert "Serving" not in run.stderr
    assert not missing.exists()
    with running_server(missing, create=True) as server:
        assert httpx.get(server.url + "/collections").json() == []
    assert missing.is_dir()


def test_serve_points_from_a_collection_to_the_folder_that_holds_it(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "data" / "docs", dim=2):
        pass
    run = _serve(str(tmp_path / "data" / "docs"), "--port", str(free_port()))
    assert run.returncode == 1
    assert "is a collection" in run.stderr
    assert str(tmp_path / "data") in run.stderr.replace("\n", "")


def test_the_client_names_a_server_that_is_not_running() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = simsearch.Client(url)
    with pytest.raises(simsearch.ServerUnavailableError, match="cannot reach") as caught:
        client.health()
    assert url in str(caught.value)
    assert isinstance(caught.value, ConnectionError)
    with pytest.raises(simsearch.ServerUnavailableError):
        client.collection("docs").search([0.1, 0.2], k=1)


def test_the_client_names_a_server_that_does_not_answer_in_time() -> None:
    # A socket that accepts connections and never answers them.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        with pytest.raises(simsearch.ServerUnavailableError, match="did not answer") as caught:
            simsearch.Client(url, timeout=0.5).health()
        assert url in str(caught.value)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        silent.close()


def test_serve_on_port_zero_announces_the_port_it_bound(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "simsearch.cli", "serve", str(tmp_path / "data"), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"on (http://127\.0\.0\.1:(\d+)) \(no API keys\)", line)
        assert match, line
        assert int(match.group(2)) > 0
        assert httpx.get(match.group(1) + "/health", timeout=10).json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_search_answer_has_every_documented_field_of_each_hit(tmp_path: Path) -> None:
    """Hits are written straight to JSON: each carries every field of the documented
    schema, nulls included, with unicode kept as it is."""
    from simsearch.server.schemas import HitOut

    with simsearch.Collection.open(tmp_path / "data" / "c", metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]], texts=["x"], metadata=[{"ü": [1, {"n": None}]}])
        col.add(["é"], vectors=[[0.5, 0.0]])
    app = create_app(ServerSettings(data_dir=tmp_path / "data"))
    with TestClient(app) as client:
        answer = client.post("/collections/c/search", json={"query": [1.0, 0.0], "k": 2})
    assert answer.status_code == 200
    assert answer.json() == {
        "results": [[
            {"id": "a", "score": 1.0, "metadata": {"ü": [1, {"n": None}]}, "text": "x",
             "relevance": None, "dense_score": None, "lexical_score": None},
            {"id": "é", "score": 0.5, "metadata": {}, "text": None,
             "relevance": None, "dense_score": None, "lexical_score": None},
        ]]
    }  # fmt: skip
    assert "é" in answer.text  # UTF-8, not escapes
    for hit in answer.json()["results"][0]:
        assert set(hit) == set(HitOut.model_fields)


def test_a_score_json_cannot_hold_is_null_as_the_schema_writes_it(tmp_path: Path) -> None:
    """An l2 distance that overflows float32 scores -inf: the answer says null, not 500."""
    with simsearch.Collection.open(tmp_path / "data" / "c", metric="l2") as col:
        col.add(["far", "near"], vectors=[[0.0, 1.8e19], [1.0, 0.0]])
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as client:
        answer = client.post("/collections/c/search", json={"query": [1.8e19, 0.0], "k": 2})
    assert answer.status_code == 200, answer.text
    scores = {h["id"]: h["score"] for h in answer.json()["results"][0]}
    assert scores["far"] is None
    assert isinstance(scores["near"], float)


def test_a_slow_search_leaves_the_event_loop_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search route is a coroutine that runs the search on the server's pool: a search
    that takes a second must not hold up other requests meanwhile, and the pool ends with
    the app."""
    with simsearch.Collection.open(tmp_path / "c", dim=2, metric="dot") as col:
        col.add(["a"], vectors=[[1.0, 0.0]])
    search = simsearch.Collection.search

    def slow(self: simsearch.Collection, *args: object, **kwargs: object) -> simsearch.Results:
        time.sleep(1.0)
        return search(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(simsearch.Collection, "search", slow)
    answers: list[int] = []
    before = set(threading.enumerate())
    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as http:
        body = {"query": [1, 0], "k": 1}
        searching = threading.Thread(
            target=lambda: answers.append(http.post("/collections/c/search", json=body).status_code)
        )
        searching.start()
        time.sleep(0.2)  # the search is under way
        started = time.perf_counter()
        assert http.get("/health").status_code == 200
        waited = time.perf_counter() - started
        searching.join()
    assert answers == [200]
    assert waited < 0.5, f"/health waited {waited:.2f} s behind a search"
    # The app's search pool ended with it (its threads would otherwise hold readers open).
    left = [t for t in threading.enumerate() if t not in before and t.name.startswith("search")]
    assert left == []


def test_the_client_creates_a_collection_with_the_index_asked_for(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server, simsearch.Client(server.url) as client:
        graph = client.create_collection("graph", dim=2, index="hnsw")
        assert graph.info()["index"] == "hnsw"
        assert client.create_collection("plain", dim=2).info()["index"] == "flat"
        with pytest.raises(simsearch.InvalidInputError, match=r"body\.index.*'hnsw'"):
            client.create_collection("bad", dim=2, index="kdtree")


def test_a_multivector_search_refuses_an_empty_or_oversized_query_set(local: TestClient) -> None:
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    made = local.post(
        "/collections", headers=admin, json={"name": "mv", "dim": 2, "multivector": True}
    )
    assert made.status_code in (200, 201), made.text
    added = local.post(
        "/collections/mv/add",
        headers=admin,
        json={"ids": ["a"], "multivectors": [[[1, 0], [0, 1]]]},
    )
    assert added.status_code in (200, 201), added.text
    for query in ([[]], [[1, 0]] * 1025):
        r = local.post("/collections/mv/search", headers=admin, json={"query": query, "k": 1})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_vector"
    ok = local.post("/collections/mv/search", headers=admin, json={"query": [[1, 0]], "k": 1})
    assert ok.json()["results"][0][0]["id"] == "a"


def test_after_a_failure_of_the_server_the_next_request_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    settings = ServerSettings(data_dir=tmp_path / "data")
    with serving_in_thread(settings) as url, simsearch.Client(url) as client:
        col = client.create_collection("docs", dim=2)

        def broken(*args: object, **kwargs: object) -> int:
            raise RuntimeError("a bug")

        monkeypatch.setattr(simsearch.Collection, "count", broken)
        for _ in range(3):
            with pytest.raises(simsearch.SimsearchError, match="the server failed"):
                col.count()
            # The failed answer closed its connection and said so: the client does not
            # reuse it (which would fail as if the server were down).
            assert col.info()["count"] == 0
        failed = httpx.post(f"{url}/collections/docs/count", json={})
        assert failed.status_code == 500
        assert failed.headers["connection"] == "close"


def test_the_client_refuses_a_name_no_server_serves(tmp_path: Path) -> None:
    # Checked before anything is sent: "docs/search" would reach another route.
    with simsearch.Client("http://127.0.0.1:9") as client:  # nothing listens there
        for name in ("../health", "docs/search", ".hidden", "", "x" * 65, 3):
            with pytest.raises(simsearch.InvalidArgumentError, match="not a collection name"):
                client.collection(name)  # type: ignore[arg-type]
            with pytest.raises(simsearch.InvalidArgumentError, match="not a collection name"):
                client.create_collection(name)  # type: ignore[arg-type]
            with pytest.raises(simsearch.InvalidArgumentError, match="not a collection name"):
                client.delete_collection(name)  # type: ignore[arg-type]


def test_bodies_are_typed_as_json_types_them(local: TestClient) -> None:
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    local.post("/collections", headers=admin, json={"name": "docs", "dim": 3, "metric": "dot"})
    local.post("/collections/docs/add", headers=admin, json={"ids": ["a"], "vectors": [[1, 0, 0]]})
    search = "/collections/docs/search"
    ok = local.post(search, headers=admin, json={"query": [1, 0, 0], "k": 1})  # ints are numbers
    assert ok.json()["results"][0][0]["id"] == "a"
    for body in (
        {"query": [1, 0, 0], "k": "2"},
        {"query": [1, 0, 0], "k": True},
        {"query": [True, False, False], "k": 1},
    ):
        r = local.post(search, headers=admin, json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "invalid_input"
    r = local.post("/collections/docs/delete", headers=admin, json={"ids": ["a"], "all": "no"})
    assert r.status_code == 400
    assert local.post("/collections/docs/count", headers=admin, json={}).json()["count"] == 1
