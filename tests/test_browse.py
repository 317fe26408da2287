"""Browsing: get by id or filter with paging and parts, count, search pages, listing; the
same behaviour locally and through the HTTP client."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.errors import InvalidArgumentError, InvalidFilterError, ItemNotFoundError

Factory = Callable[[], Any]
N = 30


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server_process import running_server

    with running_server(tmp_path_factory.mktemp("browse") / "data") as server:
        yield server


@pytest.fixture(params=["local-flat", "local-hnsw", "remote"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A collection of N 4-d items with metadata ``{"n": i, "even": i % 2 == 0}``."""
    if request.param == "remote":
        client = simsearch.Client(request.getfixturevalue("open_server").url)
        col: Any = client.create_collection(uuid.uuid4().hex, metric="dot", dim=4)
    else:
        index = simsearch.HNSW(exact_below=0, ef_search=500) if "hnsw" in request.param else None
        col = simsearch.Collection.open(tmp_path / "c", metric="dot", index=index)
    vecs = np.random.default_rng(3).standard_normal((N, 4)).astype(np.float32)
    col.add(
        [f"i{n}" for n in range(N)],
        vectors=vecs,
        texts=[f"text {n}" for n in range(N)],
        metadata=[{"n": n, "even": n % 2 == 0} for n in range(N)],
    )
    yield col
    col.close()
    if request.param == "remote":
        client.close()


def test_get_by_ids_keeps_order_and_parts(filled: Any) -> None:
    items = filled.get(["i5", "i1"])
    assert [i.id for i in items] == ["i5", "i1"]
    assert items[0].vector is not None
    assert items[0].vector.shape == (4,)
    assert (items[0].text, items[0].metadata) == ("text 5", {"n": 5, "even": False})
    light = filled.get(["i5"], include=["metadata"])[0]
    assert (light.vector, light.text, light.metadata) == (None, None, {"n": 5, "even": False})


def test_missing_ids_raise_or_are_skipped(filled: Any) -> None:
    with pytest.raises(ItemNotFoundError, match="'nope'"):
        filled.get(["i1", "nope"])
    assert [i.id for i in filled.get(["nope", "i2"], missing="skip")] == ["i2"]


def test_browse_by_filter_in_pages(filled: Any) -> None:
    even = [i.id for i in filled.get(where={"even": True}, include=[])]
    assert even == [f"i{n}" for n in range(0, N, 2)]
    pages = [filled.get(where={"even": True}, limit=4, offset=o, include=[]) for o in (0, 4, 8, 12)]
    assert [i.id for page in pages for i in page] == even
    assert len(filled.get(limit=7)) == 7
    assert [i.id for i in filled.get(offset=N - 2)] == [f"i{N - 2}", f"i{N - 1}"]
    both = filled.get(["i3", "i2", "i4"], where={"even": True})
    assert [i.id for i in both] == ["i2", "i4"]


def test_count_with_and_without_a_filter(filled: Any) -> None:
    assert filled.count() == N
    assert filled.count({"n": {"$lt": 10}}) == 10
    assert filled.count({"even": True, "n": {"$gte": 20}}) == 5
    with pytest.raises(InvalidFilterError, match="did you mean 'even'"):
        filled.count({"evn": True})  # a misspelled field is an error, not a count of 0
    with pytest.raises(InvalidFilterError, match="did you mean 'even'"):
        filled.get(where={"evn": True})


def test_search_pages_join_into_the_deeper_search(filled: Any) -> None:
    query = [1.0, 0.5, -0.2, 0.1]
    whole = [h.id for h in filled.search(query, k=12)[0]]
    pages = [[h.id for h in filled.search(query, k=4, offset=o)[0]] for o in (0, 4, 8)]
    assert [i for p in pages for i in p] == whole
    assert filled.search(query, k=5, offset=N)[0] == []
    filtered = [h.id for h in filled.search(query, k=3, offset=2, where={"even": True})[0]]
    assert filtered == [h.id for h in filled.search(query, k=5, where={"even": True})[0]][2:5]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"include": ["vectors"]}, "valid parts are: metadata, text, vector"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"offset": 1.5}, "offset must be a whole number"),
        ({"offset": 2**63}, r"offset must be a whole number in \[0, 9223372036854775807\]"),
        ({"limit": 10**30}, "limit must be a whole number in"),
        ({"missing": "ignore"}, "missing must be one of"),
    ],
)
def test_bad_browse_arguments_are_named(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with simsearch.Collection.open(tmp_path / "c", dim=2) as col:
        with pytest.raises(InvalidArgumentError, match=words):
            col.get(["a"], **kwargs)
        with pytest.raises(InvalidFilterError):
            col.count({"n": {"$near": 1}})
        with pytest.raises(InvalidArgumentError, match="offset"):
            col.search([1.0, 0.0], offset=-1)


def test_the_server_refuses_an_offset_past_64_bits(open_server: Any) -> None:
    client = simsearch.Client(open_server.url)
    col = client.create_collection(uuid.uuid4().hex, metric="dot", dim=2)
    with pytest.raises(simsearch.InvalidInputError, match="offset"):
        col.get(offset=2**63)
    assert col.count() == 0  # and the next request on the same connection is answered


def test_list_collections(tmp_path: Path) -> None:
    for name in ("b", "a"):
        simsearch.Collection.open(tmp_path / name, dim=2).close()
    (tmp_path / "not-one").mkdir()
    (tmp_path / "file.txt").write_text("x")
    assert simsearch.list_collections(tmp_path) == ["a", "b"]
    with pytest.raises(simsearch.NotACollectionError):
        simsearch.list_collections(tmp_path / "missing")


def test_the_server_sends_vectors_only_when_asked(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from simsearch.server.app import create_app
    from simsearch.server.settings import ServerSettings

    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "data"))) as http:
        http.post("/collections", json={"name": "c", "metric": "dot", "dim": 2})
        http.post("/collections/c/add", json={"ids": ["a", "b"], "vectors": [[1, 0], [0, 1]]})
        plain = http.post("/collections/c/get", json={"ids": ["a"]}).json()
        assert plain == {"items": [{"id": "a", "vector": None, "text": None, "metadata": {}}]}
        full = http.post("/collections/c/get", json={"include": ["vector"], "limit": 1}).json()
        assert full["items"][0]["vector"] == [1.0, 0.0]
        assert http.post("/collections/c/count", json={}).json() == {"count": 2}
        page = http.post("/collections/c/search", json={"query": [1, 0], "k": 1, "offset": 1})
        assert [h["id"] for h in page.json()["results"][0]] == ["b"]
        missing = http.post("/collections/c/get", json={"ids": ["zz"]})
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "item_not_found"


def test_cli_list_get_count(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from simsearch.cli import app

    runner = CliRunner()
    with simsearch.Collection.open(tmp_path / "c", metric="dot") as col:
        col.add([f"i{n}" for n in range(30)], vectors=np.ones((30, 2)),
                metadata=[{"n": n} for n in range(30)])  # fmt: skip
    listed = json.loads(runner.invoke(app, ["list", str(tmp_path), "--json"]).stdout)
    assert listed == [{"name": "c", "count": 30, "metric": "dot", "dim": 2, "index": "flat"}]
    assert "c" in runner.invoke(app, ["list", str(tmp_path)]).stdout
    page = runner.invoke(app, ["get", str(tmp_path / "c"), "--where", '{"n": {"$gte": 10}}',
                               "--limit", "3", "--offset", "2", "--json"])  # fmt: skip
    assert page.exit_code == 0, page.output
    assert [json.loads(line)["id"] for line in page.stdout.splitlines()] == ["i12", "i13", "i14"]
    table = runner.invoke(app, ["get", str(tmp_path / "c"), "--where", '{"n": {"$gte": 10}}',
                                "--limit", "3", "--offset", "2"])  # fmt: skip
    assert "showing 3-5 of 20" in table.output
    assert "i13" in table.output
    assert len(runner.invoke(app, ["get", str(tmp_path / "c"), "--json"]).stdout.splitlines()) == 20
    one = runner.invoke(app, ["get", str(tmp_path / "c"), "i3", "--vectors", "--json"])
    assert json.loads(one.stdout)["vector"] == [1.0, 1.0]
    missing = runner.invoke(app, ["get", str(tmp_path / "c"), "i3", "zz"])
    assert missing.exit_code == 1
    assert "'zz'" in missing.output
    skipped = runner.invoke(app, ["get", str(tmp_path / "c"), "i3", "zz", "--skip-missing"])
    assert skipped.exit_code == 0
    counted = runner.invoke(app, ["count", str(tmp_path / "c"), "--where", '{"n": {"$lt": 5}}'])
    assert counted.stdout.strip() == "5"
