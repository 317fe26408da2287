"""The server under generated requests: a bounded schemathesis run against the served OpenAPI
document, then bodies no schema describes (NaN, Infinity, lone surrogates, NUL, nesting and
width past every limit, oversized batches), with and without keys: no request gets a 5xx or
a large answer, and a refused request writes nothing."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from server_process import KEYS, Server, key_file, running_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    with running_server(root / "data", keys=key_file(root / "keys.json")) as server:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        for name, dim in (("docs", 2), ("0", 3)):
            httpx.post(f"{server.url}/collections", headers=admin, json={"name": name, "dim": dim})
        httpx.post(
            f"{server.url}/collections/docs/add",
            headers=admin,
            json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "metadata": [{"t": 1}, {}]},
        )
        yield server


def test_no_server_errors(fuzz_server: Server) -> None:
    """Every operation of the OpenAPI document, 40 generated requests each, as the admin
    (so most requests reach the handlers; the auth layer is covered elsewhere)."""
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {KEYS['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=60)

        fuzz()
    metrics = httpx.get(f"{fuzz_server.url}/metrics", headers=headers).text
    sent = sum(
        int(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("simsearch_requests_total")
    )
    assert sent >= 200, metrics
    assert 'status="5' not in metrics


# -- hostile bodies: what a schema-driven fuzzer does not send ---------------------------------
# Raw JSON literals for one leaf of a valid body; json.dumps cannot write them, so each is
# put in by text replacement of a placeholder.
PLACEHOLDER = "@@hostile@@"
NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"\\ud800"']
STRINGS = ['"\\ud800"', '"\\udfff"', '"a\\udc00b"', '"\\u0000"', '"a\\u0000b"', "NaN"]
KEY_STRINGS = STRINGS[:-1]  # a key must be a string
TEMPLATES: list[tuple[str, dict[str, Any]]] = [
    ("/collections", {"name": "fz", "metric": "dot", "dim": 2, "encoder": "e", "index": "flat"}),
    (
        "/collections/docs/add",
        {"ids": ["n1"], "vectors": [[0.5, 0.5]], "texts": ["t"], "metadata": [{"m": 1, "s": "v"}]},
    ),
    (
        "/collections/docs/upsert",
        {"ids": ["n2"], "vectors": [[0.5, 0.5]], "texts": ["t"], "metadata": [{"m": 1, "s": "v"}]},
    ),
    ("/collections/docs/get", {"ids": ["a"]}),
    ("/collections/docs/delete", {"ids": ["zz"], "where": {"t": {"$gt": 5}}}),
    (
        "/collections/docs/search",
        {"query": [1, 0], "k": 1, "where": {"t": {"$in": [1, 2]}}, "min_relevance": 0.5},
    ),
    ("/collections/docs/search", {"query": "text", "k": 1}),
    ("/collections/docs/search", {"query": ["text"], "where": {"s": "v", "$or": [{"t": 1}]}}),
]


def _positions(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every leaf and every object key of ``node``, with what kind of literal fits there."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, ("key", key)), "key"
            yield from _positions(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _positions(value, (*path, i))
    elif isinstance(node, str):
        yield path, "string"
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path, "number"


def _with(node: Any, path: tuple[Any, ...], literal: str) -> bytes:
    body = copy.deepcopy(node)
    target = body
    for step in path[:-1]:
        target = target[step]
    last = path[-1]
    if isinstance(last, tuple):
        target[PLACEHOLDER] = target.pop(last[1])
    else:
        target[last] = PLACEHOLDER
    return json.dumps(body).replace(f'"{PLACEHOLDER}"', literal).encode()


def _leaf_cases() -> list[Any]:
    cases = []
    for route, template in TEMPLATES:
        for path, kind in _positions(template):
            literals = {"number": NUMBERS, "string": STRINGS, "key": KEY_STRINGS}[kind]
            where = ".".join(f"<{p[1]}>" if isinstance(p, tuple) else str(p) for p in path)
            for literal in literals:
                case_id = f"{route.rsplit('/', 1)[-1]}:{where}={literal}"
                cases.append(pytest.param(route, _with(template, path, literal), id=case_id))
    return cases


def _nested(depth: int, leaf: Any, wrap: Callable[[Any], Any]) -> Any:
    node = leaf
    for _ in range(depth):
        node = wrap(node)
    return node


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode()


# Bodies past a limit: each must be refused (4xx) and write nothing.
PAST_LIMITS = {
    "metadata-1000-deep": (
        "/collections/docs/add",
        b'{"ids": ["d"], "vectors": [[1, 1]], "metadata": ['
        + b'{"a": ' * 1000
        + b"1"
        + b"}" * 1000
        + b"]}",
    ),
    "metadata-list-5000-deep": (
        "/collections/docs/add",
        b'{"ids": ["d"], "vectors": [[1, 1]], "metadata": [{"a": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}]}",
    ),
    "filter-50-and-levels": (
        "/collections/docs/search",
        _raw({"query": [1, 0], "where": _nested(50, {"t": 1}, lambda f: {"$and": [f]})}),
    ),
    "filter-1000-not-levels": (
        "/collections/docs/search",
        b'{"query": [1, 0], "where": ' + b'{"$not": ' * 1000 + b'{"t": 1}' + b"}" * 1001,
    ),
    "filter-20000-or-clauses": (
        "/collections/docs/search",
        _raw({"query": [1, 0], "where": {"$or": [{"t": i} for i in range(20_000)]}}),
    ),
    "filter-20000-and-clauses": (
        "/collections/docs/search",
        _raw({"query": [1, 0], "where": {"$and": [{f"f{i}": i} for i in range(20_000)]}}),
    ),
    "filter-20000-fields": (
        "/collections/docs/search",
        _raw({"query": [1, 0], "where": {f"f{i}": i for i in range(20_000)}}),
    ),
    "filter-in-20000-values": (
        "/collections/docs/search",
        _raw({"query": [1, 0], "where": {"t": {"$in": list(range(20_000))}}}),
    ),
    "delete-filter-20000-or-clauses": (
        "/collections/docs/delete",
        _raw({"where": {"$or": [{"t": i} for i in range(20_000)]}}),
    ),
    "add-10001-ids": (
        "/collections/docs/add",
        _raw({"ids": [f"b{i}" for i in range(10_001)], "vectors": [[1, 1]] * 10_001}),
    ),
    "get-10001-ids": ("/collections/docs/get", _raw({"ids": ["a"] * 10_001})),
    "delete-10001-ids": ("/collections/docs/delete", _raw({"ids": ["zz"] * 10_001})),
    "search-1001-queries": ("/collections/docs/search", _raw({"query": [[1, 0]] * 1001})),
    "search-101-queries-k-1000": (
        "/collections/docs/search",
        _raw({"query": [[1, 0]] * 101, "k": 1000}),
    ),
    "search-1001-texts": ("/collections/docs/search", _raw({"query": [""] * 1001})),
    "search-text-1000001-chars": ("/collections/docs/search", _raw({"query": "q" * 1_000_001})),
    "add-1001-texts": (
        "/collections/docs/add",
        _raw({"ids": [f"t{i}" for i in range(1001)], "texts": [""] * 1001}),
    ),
    "upsert-texts-1200000-chars": (
        "/collections/docs/upsert",
        _raw({"ids": ["t1", "t2"], "texts": ["x" * 600_000] * 2}),
    ),
    "k-4400-digits": ("/collections/docs/search", b'{"query": [1, 0], "k": 1' + b"0" * 4400 + b"}"),
}


class Hostile:
    """Sends hostile bodies to one server over one connection pool, and checks after each
    refused request that no collection changed (count and seq)."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.known = self.state()

    def state(self) -> dict[str, tuple[int, int]]:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        listed = self.http.get("/collections", headers=admin).json()
        return {c["name"]: (c["count"], c["seq"]) for c in listed}

    def send(self, route: str, body: bytes, key: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        r = self.http.post(route, content=body, headers=headers)
        assert r.status_code < 500, r.text[:500]
        assert len(r.content) <= max(64 * 1024, 4 * len(body)), len(r.content)
        if r.status_code >= 400:
            error = r.json()["error"]
            assert isinstance(error["code"], str)
            assert isinstance(error["message"], str)
        return r

    def send_as_admin(self, route: str, body: bytes) -> httpx.Response:
        r = self.send(route, body, KEYS["admin"])
        now = self.state()
        if r.status_code >= 400:
            assert now == self.known, f"a refused request ({r.status_code}) wrote"
        self.known = now
        return r


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    with running_server(root / "data", keys=key_file(root / "keys.json")) as server:
        admin = {"Authorization": f"Bearer {KEYS['admin']}"}
        r = httpx.post(f"{server.url}/collections", headers=admin, json={"name": "docs", "dim": 2})
        assert r.status_code == 201, r.text
        r = httpx.post(
            f"{server.url}/collections/docs/add",
            headers=admin,
            json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]], "metadata": [{"t": 1}, {}]},
        )
        assert r.status_code == 201, r.text
        client = Hostile(server)
        try:
            yield client
        finally:
            client.http.close()


@pytest.mark.parametrize(("route", "body"), _leaf_cases())
def test_hostile_leaves_get_no_server_error(hostile: Hostile, route: str, body: bytes) -> None:
    """One leaf or key of a valid body replaced by NaN, Infinity, an overflowing number, a
    lone surrogate or a NUL: never a 5xx, never a large answer, nothing written if refused;
    without a key or with a wrong one, 401 before anything else."""
    for key in (None, "not-a-real-key-123"):
        assert hostile.send(route, body, key).status_code == 401
    hostile.send_as_admin(route, body)


@pytest.mark.parametrize("case", list(PAST_LIMITS))
def test_bodies_past_a_limit_are_refused(hostile: Hostile, case: str) -> None:
    route, body = PAST_LIMITS[case]
    assert hostile.send(route, body, None).status_code == 401
    assert 400 <= hostile.send(route, body, KEYS["other"]).status_code < 500
    r = hostile.send_as_admin(route, body)
    assert 400 <= r.status_code < 500, r.text[:300]


def test_hostile_collection_names_in_the_path(hostile: Hostile) -> None:
    admin = {"Authorization": f"Bearer {KEYS['admin']}"}
    for name in ("%00", "a%00b", "%ED%A0%80", "docs%0A", "%2E%2E", "a" * 65, "%FF"):
        for method in ("GET", "DELETE"):
            r = hostile.http.request(method, f"/collections/{name}", headers=admin)
            assert 400 <= r.status_code < 500, (name, r.text)
            assert "error" in r.json()
        r = hostile.send_as_admin(f"/collections/{name}/search", b'{"query": [1, 0]}')
        assert 400 <= r.status_code < 500, (name, r.text)
    assert hostile.state() == hostile.known
