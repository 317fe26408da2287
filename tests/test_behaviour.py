"""One behaviour suite, run against the in-process Collection and the HTTP client alike."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.index import quantized

Factory = Callable[..., Any]


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from server_process import running_server

    with running_server(tmp_path_factory.mktemp("open") / "data") as server:
        yield server


#: Approximate indexes are forced on (exact_below=0, and quantized ones trained from a few
#: items) and search wide enough to cover these small test sets.
INDEXES: dict[str, simsearch.Flat | simsearch.HNSW | simsearch.IVFPQ] = {
    "local-flat": simsearch.Flat(),
    "local-hnsw": simsearch.HNSW(exact_below=0, ef_search=1000),
    "local-int8": simsearch.HNSW(exact_below=0, ef_search=1000, quantization="int8"),
    "local-binary": simsearch.HNSW(
        exact_below=0, ef_search=1000, quantization="binary", rescore=100
    ),
    "local-ivfpq": simsearch.IVFPQ(exact_below=0, nbits=4, nprobe=4096, rescore=100),
}


@pytest.fixture(params=[*INDEXES, "remote"])
def make(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Factory]:
    """``make(metric, dim)`` opens a fresh collection on the backend under test."""
    opened: list[Any] = []
    if request.param.startswith("local"):
        index = INDEXES[request.param]
        monkeypatch.setattr(quantized, "MIN_TRAIN_GRAPH", 2)
        monkeypatch.setattr(quantized, "POINTS_PER_CENTROID", 1)

        def local(metric: str = "cosine", dim: int | None = None) -> Any:
            col = simsearch.Collection.open(
                tmp_path / uuid.uuid4().hex, metric=metric, dim=dim, index=index
            )
            opened.append(col)
            return col

        yield local
        for col in opened:
            col.close()
    else:
        server = request.getfixturevalue("open_server")
        client = simsearch.Client(server.url)

        def remote(metric: str = "cosine", dim: int | None = None) -> Any:
            return client.create_collection(uuid.uuid4().hex, metric=metric, dim=dim)

        yield remote
        client.close()


def items_of(col: Any, ids: list[str]) -> list[tuple[str, list[float], str | None, dict[str, Any]]]:
    return [(i.id, i.vector.tolist(), i.text, i.metadata) for i in col.get(ids)]


def test_add_get_roundtrip_with_unicode(make: Factory) -> None:
    col = make()
    vecs = np.array([[1, 2, 3], [4, 5, 6.5]], dtype=np.float32)
    meta = [{"name": "Zoë", "tags": ["α", "β"], "n": {"deep": None}}, {}]
    col.add(["ü-1", "空"], vectors=vecs, texts=["héllo", "世界"], metadata=meta)
    assert items_of(col, ["空", "ü-1"]) == [
        ("空", [4, 5, 6.5], "世界", {}),
        ("ü-1", [1, 2, 3], "héllo", meta[0]),
    ]
    assert len(col) == 2
    assert col.info()["count"] == 2


def test_missing_ids_and_duplicates(make: Factory) -> None:
    col = make()
    col.add(["a"], vectors=[[1.0, 0.0]])
    with pytest.raises(simsearch.ItemNotFoundError, match="'b'"):
        col.get(["a", "b"])
    with pytest.raises(simsearch.DuplicateIdError, match="'a'"):
        col.add(["new", "a"], vectors=[[0, 1], [1, 1]])
    assert len(col) == 1


def test_upsert_replaces_whole_items(make: Factory) -> None:
    col = make(metric="dot")
    col.add(["a", "b"], vectors=[[1, 0], [0, 1]], texts=["x", "y"], metadata=[{"v": 1}, {"v": 2}])
    col.upsert(["b", "c"], vectors=[[1, 1], [1, -1]], metadata=[{"v": 3}, None])
    assert len(col) == 3
    assert items_of(col, ["b"]) == [("b", [1, 1], None, {"v": 3})]
    assert col.search([1, 1], k=1)[0][0].id == "b"


def test_delete_by_ids_filter_and_both(make: Factory) -> None:
    col = make(metric="dot")
    col.add(
        [f"i{n}" for n in range(6)],
        vectors=np.eye(6)[:, :3] + 0.1,
        metadata=[{"g": n % 2} for n in range(6)],
    )
    assert col.delete(["i0", "nope"]) == 1
    assert col.delete(["i1", "i2"], where={"g": 1}) == 1
    assert col.delete(where={"g": 0}) == 2
    assert sorted(h.id for h in col.search([1, 1, 1], k=10)[0]) == ["i3", "i5"]
    with pytest.raises(simsearch.InvalidArgumentError):
        col.delete()


@pytest.mark.parametrize("metric", ["cosine", "dot", "l2"])
def test_search_equals_brute_force(make: Factory, metric: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 12)).astype(np.float32)
    q = rng.standard_normal((4, 12)).astype(np.float32)
    col = make(metric=metric)
    col.add([str(i) for i in range(len(x))], vectors=x)
    res = col.search(q, k=8)
    if metric == "cosine":
        want = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
            x / np.linalg.norm(x, axis=1, keepdims=True)
        ).T
    elif metric == "dot":
        want = q @ x.T
    else:
        want = -np.linalg.norm(q[:, None] - x[None], axis=2)
    for qi, row in enumerate(res):
        top = np.argsort(-want[qi])[:8]
        assert [h.id for h in row] == [str(i) for i in top]
        np.testing.assert_allclose([h.score for h in row], want[qi, top], rtol=1e-4, atol=1e-4)


def test_filter_applies_before_ranking(make: Factory) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 6)).astype(np.float32)
    q = np.ones(6, dtype=np.float32)
    order = np.argsort(-(x @ q))
    label = np.ones(len(x), dtype=int)
    label[order[:500]] = 0
    col = make(metric="dot")
    col.add([str(i) for i in range(len(x))], vectors=x, metadata=[{"l": int(v)} for v in label])
    hits = col.search(q, k=10, where={"l": 1})[0]
    assert [h.id for h in hits] == [str(i) for i in order[500:510]]
    assert len(col.search(q, k=200, where={"l": 1})[0]) == 100
    assert col.search(q, k=5, where={"l": 7})[0] == []


def test_batches_and_padding(make: Factory) -> None:
    col = make()
    col.add(["a", "b"], vectors=[[1, 0], [0, 1]])
    res = col.search([[1, 0], [0, 1], [1, 1]], k=4)
    assert len(res) == 3
    assert res.ids[0].tolist() == ["a", "b", None, None]
    assert np.isneginf(res.scores[:, 2:]).all()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.add(["n"], vectors=[[np.nan, 0]]), simsearch.InvalidVectorError),
        (lambda c: c.add(["n"], vectors=[[1, 2, 3]]), simsearch.DimensionMismatchError),
        (lambda c: c.add(["n", "m"], vectors=[[1, 2], [1]]), simsearch.InvalidVectorError),
        (lambda c: c.add([], vectors=[[1, 2]]), simsearch.InvalidIdError),
        (lambda c: c.add(["n", "n"], vectors=[[1, 2], [1, 2]]), simsearch.InvalidIdError),
        (lambda c: c.add([3], vectors=[[1, 2]]), simsearch.InvalidIdError),
        (lambda c: c.add(["n"], vectors=[[1, 2]], metadata=["x"]), simsearch.InvalidMetadataError),
        (lambda c: c.add(["n"], texts=[5]), simsearch.InvalidTextError),
        (lambda c: c.add(["n"]), simsearch.InvalidArgumentError),
        (lambda c: c.search([1, 0], k=0), simsearch.InvalidArgumentError),
        (lambda c: c.search([1, 0, 0]), simsearch.DimensionMismatchError),
        (lambda c: c.search([1, 0], where={"a": {"$near": 1}}), simsearch.InvalidFilterError),
        (lambda c: c.delete(where={"$or": []}), simsearch.InvalidFilterError),
    ],
)
def test_bad_input_raises_the_same_error_and_writes_nothing(
    make: Factory, call: Any, error: type
) -> None:
    col = make()
    col.add(["a"], vectors=[[1.0, 0.0]], metadata=[{"k": 1}])
    with pytest.raises(error):
        call(col)
    assert items_of(col, ["a"]) == [("a", [1.0, 0.0], None, {"k": 1})]
    assert len(col) == 1


def test_texts_are_embedded_and_searched(make: Factory) -> None:
    col = make()
    col.add(
        ["g", "s", "c"],
        texts=["A man plays the guitar", "Shares fell on Wall Street", "How to bake a cake"],
        metadata=[{"topic": "music"}, {"topic": "finance"}, {"topic": "food"}],
    )
    assert col.info()["encoder"]["name"] == "minilm-l6-v2-int8"
    assert col.search("stock market news", k=1)[0][0].id == "s"
    assert [row[0].id for row in col.search(["guitar music", "dessert recipe"], k=1)] == ["g", "c"]
    assert col.search("guitar", k=3, where={"topic": {"$ne": "music"}})[0][0].id != "g"


def test_relevance_cutoffs_need_a_calibration(make: Factory) -> None:
    col = make("cosine", 2)
    col.add(["a", "b"], vectors=[[1.0, 0.0], [0.0, 1.0]])
    assert col.search([1.0, 0.1], k=2)[0][0].relevance is None
    with pytest.raises(simsearch.NotCalibratedError):
        col.search([1.0, 0.1], k=2, min_relevance=0.5)
    with pytest.raises(simsearch.NotCalibratedError):
        col.search([1.0, 0.1], k=2, cutoff="f1")


def test_relevance_travels_over_http(tmp_path: Path) -> None:
    from server_process import running_server

    data = tmp_path / "data"
    rng = np.random.default_rng(2)
    with simsearch.Collection.open(data / "cal", metric="cosine") as col:
        col.add([f"i{j}" for j in range(200)], vectors=rng.standard_normal((200, 8)))
        col.calibrate()
        local = col.search(np.ones(8), k=5, min_relevance=0.2)[0]
    with running_server(data) as server, simsearch.Client(server.url) as client:
        remote = client.collection("cal").search(np.ones(8).tolist(), k=5, min_relevance=0.2)[0]
    assert [h.id for h in remote] == [h.id for h in local]
    assert [h.relevance for h in remote] == pytest.approx([h.relevance for h in local])
    assert all(h.relevance is not None and h.relevance >= 0.2 for h in remote)
