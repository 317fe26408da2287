"""A 3-shard collection on a local 3-node Ray cluster answers as one collection holding
the same items: every index kind, filters, paging, batches; and its own rules (ties,
the manifest, writes that touch several shards)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import simsearch
from ray_cluster import local_cluster
from server_process import serving_in_thread
from simsearch.cli import app
from simsearch.ingest import ingest

INDEXES = {
    "flat": simsearch.Flat(),
    "hnsw": simsearch.HNSW(exact_below=0, ef_search=1000),
    "int8": simsearch.HNSW(exact_below=0, ef_search=1000, quantization="int8", rescore=100),
    "ivfpq": simsearch.IVFPQ(exact_below=0, nbits=4, nprobe=4096, rescore=100),
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster(3) as running:
        yield running


def _data(n: int = 900, dim: int = 16) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(n)]
    meta = [{"g": i % 4, "n": int(i), "tag": ["a", "b", "c"][i % 3]} for i in range(n)]
    return x, ids, meta


def _items(items: list[simsearch.Item]) -> list[tuple[Any, ...]]:
    return [
        (i.id, i.vector.tolist() if i.vector is not None else None, i.text, i.metadata)
        for i in items
    ]


@pytest.mark.parametrize("kind", list(INDEXES))
def test_merged_results_equal_one_collections(cluster: Any, tmp_path: Path, kind: str) -> None:
    x, ids, meta = _data()
    rng = np.random.default_rng(12)
    q = rng.standard_normal((5, x.shape[1])).astype(np.float32)
    index = INDEXES[kind]
    with (
        simsearch.Collection.open(tmp_path / "one", metric="cosine", index=index) as one,
        simsearch.ShardedCollection.open(
            tmp_path / "sharded", shards=3, metric="cosine", index=index
        ) as many,
    ):
        for col in (one, many):
            col.add(ids[:600], vectors=x[:600], metadata=meta[:600])
            col.upsert(ids[500:], vectors=x[500:] * 2, metadata=meta[500:])
            col.delete(where={"n": {"$lt": 40}})
        assert len(many) == len(one) == 860
        assert many.count({"g": 1}) == one.count({"g": 1})
        cases: list[dict[str, Any]] = [
            {"k": 10},
            {"k": 7, "offset": 5},
            {"k": 10, "where": {"g": 2}},
            {"k": 5, "where": {"$and": [{"tag": "b"}, {"n": {"$gte": 800}}]}},
            {"k": 500, "where": {"n": {"$in": [41, 42, 700, 899, 5]}}},
            {"k": 10, "exact": True},
        ]
        for case in cases:
            want, got = one.search(q, **case), many.search(q, **case)
            assert got.ids.tolist() == want.ids.tolist(), case
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
            # Exact float32 scores may differ in the last place where BLAS groups rows
            # differently (a quantized index rescoring another number of candidates).
            assert [(h.id, h.metadata, h.text) for h in got[0]] == [
                (h.id, h.metadata, h.text) for h in want[0]
            ]
            assert not got.partial
        asked = ["doc-899", "doc-45"]
        assert _items(many.get(asked)) == _items(one.get(asked))
        assert sorted(i.id for i in many.get(where={"g": 3})) == sorted(
            i.id for i in one.get(where={"g": 3})
        )
        info = many.info()
        assert (info["count"], info["shard_count"], info["dim"]) == (860, 3, 16)


def test_texts_hybrid_and_lexical_run_on_every_shard(cluster: Any, tmp_path: Path) -> None:
    texts = [
        "A man plays the guitar",
        "Shares fell on Wall Street",
        "How to bake a cake",
        "The guitar solo was loud",
        "Stock prices rose today",
        "A recipe for chocolate cake",
    ]
    with simsearch.ShardedCollection.open(tmp_path / "t", shards=3) as col:
        col.add([f"t{i}" for i in range(6)], texts=texts)
        assert col.search("stock market news", k=1)[0][0].id in {"t1", "t4"}
        lexical = col.search("guitar", k=2, mode="lexical")[0]
        assert sorted(h.id for h in lexical) == ["t0", "t3"]
        assert all(h.lexical_score and h.lexical_score > 0 for h in lexical)
        hybrid = col.search("cake recipe", k=3, mode="hybrid")[0]
        assert hybrid[0].id in {"t2", "t5"}
        assert hybrid[0].dense_score is not None


def _hashed_encoder(calls: Path) -> Any:
    """A text encoder whose vector is drawn from a hash of the text (no two texts score
    alike), which writes a line to ``calls`` for each batch of queries it embeds, in
    whichever process it runs (defined here so that Ray ships the class by value)."""

    class Hashed:
        name, version, dim = "hashed-test", "1", 16

        def encode(self, texts: list[str], *, kind: str = "passage", progress: Any = None) -> Any:
            if kind == "query":
                with open(calls, "a", encoding="utf-8") as out:
                    out.write(f"{len(texts)}\n")
            seeds = [hashlib.blake2b(t.encode(), digest_size=8).digest() for t in texts]
            rngs = [np.random.default_rng(int.from_bytes(s, "big")) for s in seeds]
            return np.stack([r.standard_normal(16) for r in rngs]).astype(np.float32)

    return Hashed()


def _texts(n: int = 300) -> list[str]:
    """Texts of distinct lengths whose words each appear at most once in a text, so that
    no two texts tie on BM25 for a one-word query (a tie is the one place a sharded
    merge may order items otherwise than one collection)."""
    rng = np.random.default_rng(21)
    return [" ".join(f"t{w:03d}" for w in rng.choice(400, 3 + i, replace=False)) for i in range(n)]


def _sides(hits: list[simsearch.Hit]) -> list[tuple[str, float, float | None, float | None]]:
    return [(h.id, h.score, h.dense_score, h.lexical_score) for h in hits]


def _same_hits(got: list[simsearch.Hit], want: list[simsearch.Hit], ordered: bool) -> None:
    g, w = _sides(got), _sides(want)
    if not ordered:  # RRF: equal fused scores may come in another order (hybrid_merge)
        g, w = sorted(g), sorted(w)
    assert [h[0] for h in g] == [h[0] for h in w]
    for a, b in zip(g, w, strict=True):
        np.testing.assert_allclose(
            [a[1], np.nan if a[2] is None else a[2], a[3]],
            [b[1], np.nan if b[2] is None else b[2], b[3]],
            rtol=1e-6,
            atol=1e-6,
        )


def test_lexical_and_hybrid_merge_equals_one_collection(cluster: Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    texts = _texts()
    ids = [f"d{i}" for i in range(len(texts))]
    meta = [{"g": i % 3} for i in range(len(texts))]
    queries = ["t005", "t017 t230", "t100 t101 t399", "t007 nothing"]
    encoder = _hashed_encoder(calls)
    with (
        simsearch.Collection.open(tmp_path / "one", encoder=encoder) as one,
        simsearch.ShardedCollection.open(tmp_path / "many", shards=3, encoder=encoder) as many,
    ):
        for col in (one, many):
            col.add(ids, texts=texts, metadata=meta)
        cases: list[dict[str, Any]] = [
            {"mode": "lexical", "k": 10},
            {"mode": "lexical", "k": 7, "offset": 5, "where": {"g": 1}},
            {"mode": "lexical", "k": 150},  # deeper than a shard's share of the matches
            {"mode": "hybrid", "k": 10},
            {"mode": "hybrid", "k": 8, "offset": 4, "alpha": 0.3, "where": {"g": {"$ne": 2}}},
            {"mode": "hybrid", "k": 10, "fusion": "rrf"},
            # Every candidate of the pool, so that ties of RRF's rank sums cannot cut.
            {"mode": "hybrid", "k": 250, "fusion": "rrf"},
            {"mode": "hybrid", "k": 250, "fusion": "rrf", "where": {"g": 0}},
        ]
        for case in cases:
            want, got = one.search(queries, **case), many.search(queries, **case)
            rrf = case.get("fusion") == "rrf"
            for q in range(len(queries)):
                if rrf and case["k"] < 250:  # a cut may fall inside a tie: its scores hold
                    np.testing.assert_allclose(got.scores[q], want.scores[q], rtol=1e-6)
                else:
                    _same_hits(got[q], want[q], ordered=not rrf)
            assert not got.partial, case
        # A text query is embedded once (by one shard), not by every shard.
        for mode in ("dense", "hybrid"):
            calls.write_text("")
            many.search(queries, k=3, mode=mode)
            assert calls.read_text().split() == [str(len(queries))], mode
        dense = many.search(queries[1], k=5)
        assert dense.ids.tolist() == one.search(queries[1], k=5).ids.tolist()


def test_ties_follow_shard_then_insertion_order(cluster: Any, tmp_path: Path) -> None:
    ids = [f"same-{i}" for i in range(30)]
    with (
        simsearch.Collection.open(tmp_path / "one", metric="dot") as one,
        simsearch.ShardedCollection.open(tmp_path / "s", shards=3, metric="dot") as many,
    ):
        for col in (one, many):
            col.add(ids, vectors=np.ones((30, 2)))
        got = many.search([1.0, 1.0], k=12)[0]
        assert [h.score for h in got] == [h.score for h in one.search([1.0, 1.0], k=12)[0]]
        shard_of_id = {i: simsearch.distributed.placement.shard_of(i, 3) for i in ids}
        want = sorted(ids, key=lambda i: (shard_of_id[i], ids.index(i)))[:12]
        assert [h.id for h in got] == want


def test_reopening_keeps_items_and_refuses_another_shard_count(
    cluster: Any, tmp_path: Path
) -> None:
    root = tmp_path / "r"
    with simsearch.ShardedCollection.open(root, shards=3, metric="dot") as col:
        col.add(["a", "b", "c", "d"], vectors=np.eye(4))
    with pytest.raises(simsearch.ConfigMismatchError, match="3 shards, not 2"):
        simsearch.ShardedCollection.open(root, shards=2)
    with simsearch.ShardedCollection.open(root) as col:
        assert (col.shards, len(col)) == (3, 4)
        assert col.search([0, 0, 1.0, 0], k=1)[0][0].id == "c"
    # A shard that cannot open says why, like one collection: nothing to wait for.
    started = time.perf_counter()
    with pytest.raises(simsearch.ConfigMismatchError, match="metric"):
        simsearch.ShardedCollection.open(root, metric="l2", timeout=20)
    assert time.perf_counter() - started < 15
    with simsearch.ShardedCollection.open(root) as col:
        assert len(col) == 4


def test_a_shard_that_cannot_see_the_root_refuses_to_start_empty(tmp_path: Path) -> None:
    from simsearch.distributed.shard import ShardServer

    shard = ShardServer(str(tmp_path / "shard-000"), None, None, None, None)
    with pytest.raises(simsearch.NotACollectionError, match="not reachable"):
        shard.dim()
    shard.close()
    assert not (tmp_path / "shard-000").exists()


def test_a_search_no_shard_answers_raises_even_when_partial_results_are_allowed(
    cluster: Any, tmp_path: Path
) -> None:
    import ray

    col = simsearch.ShardedCollection.open(tmp_path / "gone", shards=3, dim=4)
    try:
        col.add(["a", "b", "c"], vectors=np.eye(4)[:3])
        for actor in col._actors:
            ray.kill(actor, no_restart=True)
        with pytest.raises(simsearch.ShardUnavailableError) as raised:
            col.search([[1.0, 0, 0, 0], [0, 1.0, 0, 0]], k=2, allow_partial=True, timeout=2)
        assert raised.value.shards == (0, 1, 2)
        # Bad options raise their own errors before any shard is asked (none would answer).
        q = [1.0, 0, 0, 0]
        refused: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"mode": "fuzzy"}, simsearch.InvalidArgumentError, "mode"),
            ({"k": 0}, simsearch.InvalidArgumentError, "k"),
            ({"offset": -1}, simsearch.InvalidArgumentError, "offset"),
            ({"where": {"a": {"$near": 1}}}, simsearch.InvalidFilterError, "near"),
            ({"mode": "lexical"}, simsearch.InvalidArgumentError, "string"),
            ({"min_relevance": 0.5}, simsearch.NotCalibratedError, "do not calibrate"),
            ({"cutoff": "f1"}, simsearch.NotCalibratedError, "do not calibrate"),
            ({"hubness": "csls"}, simsearch.InvalidArgumentError, "do not reduce hubness"),
        ]
        for options, error, words in refused:
            with pytest.raises(error, match=words):
                col.search(q, timeout=2, **options)
        with pytest.raises(simsearch.InvalidVectorError):
            col.search([float("nan"), 0, 0, 0], timeout=2)
    finally:
        col._closed = True  # its actors are gone: nothing left to close


def test_a_lost_shard_is_named_and_partial_results_rank_the_live_shards_items(
    cluster: Any, tmp_path: Path
) -> None:
    import ray

    from simsearch.distributed.placement import shard_of

    x, ids, meta = _data(300, 8)
    q = np.random.default_rng(3).standard_normal((2, 8)).astype(np.float32)
    col = simsearch.ShardedCollection.open(tmp_path / "lost", shards=3, metric="dot")
    try:
        col.add(ids, vectors=x, metadata=meta)
        ray.kill(col._actors[1], no_restart=True)
        for mode in ({}, {"where": {"g": 2}}):
            with pytest.raises(simsearch.ShardUnavailableError, match=r"^shard 1 of 3") as raised:
                col.search(q, k=10, timeout=5, **mode)
            assert raised.value.shards == (1,)
            res = col.search(q, k=10, timeout=5, allow_partial=True, **mode)
            assert (res.partial, res.shards, res.missing_shards) == (True, (0, 2), (1,))
            live = [
                i
                for i in range(len(ids))
                if shard_of(ids[i], 3) != 1 and ("where" not in mode or meta[i]["g"] == 2)
            ]
            scores = q @ x[live].T
            want = [[ids[live[j]] for j in np.argsort(-row)[:10]] for row in scores]
            assert res.ids.tolist() == want
            np.testing.assert_allclose(res.scores, -np.sort(-scores, axis=1)[:, :10], rtol=1e-5)
    finally:
        for actor in col._actors:
            ray.kill(actor, no_restart=True)
        col._closed = True  # its actors are gone: nothing left to close


def test_an_address_of_another_cluster_is_refused(cluster: Any, tmp_path: Path) -> None:
    # The process is connected to the test cluster: Ray would ignore another address.
    with pytest.raises(simsearch.ConfigMismatchError, match="connected to the Ray cluster at"):
        simsearch.ShardedCollection.open(tmp_path / "a", shards=2, ray_address="127.0.0.1:1")
    assert not (tmp_path / "a").exists()
    with simsearch.ShardedCollection.open(
        tmp_path / "b", shards=2, dim=2, ray_address=cluster.address
    ) as col:
        assert len(col) == 0


def test_closing_one_collection_keeps_the_ray_connection_another_uses() -> None:
    from simsearch.distributed import connection

    class Connection:
        """Ray's connection calls, counted (the bookkeeping under test is simsearch's)."""

        def __init__(self, up: bool) -> None:
            self.up, self.inits, self.shutdowns = up, 0, 0

        def is_initialized(self) -> bool:
            return self.up

        def init(self, **_: Any) -> None:
            self.up, self.inits = True, self.inits + 1

        def shutdown(self) -> None:
            self.up, self.shutdowns = False, self.shutdowns + 1

    ours = Connection(up=False)
    first, second = connection.join_ray(ours, None), connection.join_ray(ours, None)
    assert (first, second, ours.inits) == (True, True, 1)
    connection.leave_ray(ours)
    assert (ours.up, ours.shutdowns) == (True, 0)  # the second collection still uses it
    connection.leave_ray(ours)
    assert (ours.up, ours.shutdowns) == (False, 1)
    theirs = Connection(up=True)  # the caller's own connection is never ended
    assert connection.join_ray(theirs, None) is False


def test_a_batch_with_a_stored_id_writes_nothing_on_any_shard(cluster: Any, tmp_path: Path) -> None:
    with simsearch.ShardedCollection.open(tmp_path / "d", shards=3, metric="dot") as col:
        col.add(["x"], vectors=[[1.0, 0.0]])
        batch = [f"n{i}" for i in range(20)] + ["x"]
        with pytest.raises(simsearch.DuplicateIdError, match="'x'"):
            col.add(batch, vectors=np.ones((21, 2)))
        with pytest.raises(simsearch.DimensionMismatchError):
            col.add(["y", "z"], vectors=np.ones((2, 3)))
        assert len(col) == 1
        col.upsert(batch, vectors=np.ones((21, 2)))
        assert len(col) == 21


def _records_file(path: Path) -> Path:
    words = ["guitar", "cake", "stock", "river", "train", "poem", "chess", "rain"]
    lines = [
        json.dumps(
            {
                "id": f"r{i}",
                "text": f"{words[i % 8]} and {words[(3 * i) % 8]}, note {i}",
                "year": 2000 + i,
                "score": i / 4,
                "ok": i % 2 == 0,
                "tags": [words[i % 8]],
            }
        )
        for i in range(40)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_distributed_ingest_stores_what_a_single_machine_ingest_stores(
    cluster: Any, tmp_path: Path
) -> None:
    from simsearch.distributed.ingest import ingest_sharded

    source = _records_file(tmp_path / "notes.jsonl")
    ingest(source, tmp_path / "one")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n', encoding="utf-8")
    failed = CliRunner().invoke(
        app, ["ingest", str(bad), "--into", str(tmp_path / "many"), "--shards", "3"]
    )
    assert failed.exit_code == 1
    assert "bad.jsonl:2" in failed.output
    assert not (tmp_path / "many").exists()  # checked before anything is created
    with (
        simsearch.Collection.open(tmp_path / "one", create=False) as one,
        simsearch.ShardedCollection.open(
            tmp_path / "many", shards=3, encoder=simsearch.encoders.DEFAULT_ENCODER
        ) as many,
    ):
        report = ingest_sharded(source, many, workers=1, batch_size=16)
        assert (report.stored, report.held) == (40, 40)
        want = {i.id: i for i in one.get()}
        got = {i.id: i for i in many.get()}
        assert sorted(got) == sorted(want)
        for item_id, item in want.items():
            assert (got[item_id].text, got[item_id].metadata) == (item.text, item.metadata)
            np.testing.assert_allclose(got[item_id].vector, item.vector, atol=1e-5)
        assert many.info()["encoder"] == one.info()["encoder"]
        # Each shard stores its items in file order.
        order = [i.id for i in many.get()]
        for s in range(3):
            mine = [i for i in order if simsearch.distributed.placement.shard_of(i, 3) == s]
            assert mine == sorted(mine, key=lambda i: int(i[1:]))
        q = "a chess poem"
        assert many.search(q, k=5).ids.tolist() == one.search(q, k=5).ids.tolist()
        again = ingest_sharded(source, many, skip_existing=True)
        assert (again.stored, len(again.existing), again.held) == (0, 40, 40)
        with pytest.raises(simsearch.DuplicateIdError, match="already in"):
            ingest_sharded(source, many)


def test_the_server_serves_a_sharded_collection_as_one(cluster: Any, tmp_path: Path) -> None:
    from simsearch.distributed.placement import load_or_create_manifest
    from simsearch.server.settings import ServerSettings, load_sharded

    load_or_create_manifest(tmp_path / "root", 3)
    entries = tmp_path / "sharded.json"
    entries.write_text(json.dumps({"sharded": [{"name": "docs", "root": "root"}]}))
    settings = ServerSettings(data_dir=tmp_path / "data", sharded=load_sharded(entries))
    x, ids, meta = _data(120, 8)
    fresh = [i for i in ids if simsearch.distributed.placement.shard_of(i, 3) == 1][:10]
    with serving_in_thread(settings) as url, simsearch.Client(url) as client:
        plain = client.create_collection("plain", metric="cosine")
        docs = client.collection("docs")
        assert sorted(c["name"] for c in client.list_collections()) == ["docs", "plain"]
        for col in (plain, docs):
            col.add(ids, vectors=x, metadata=meta)
            col.update(fresh, metadata=[{"fresh": True}] * 10)
            col.delete(where={"n": {"$gte": 110}})
        assert docs.info()["count"] == plain.info()["count"] == 110
        # Only shard 1 holds items with the field: the filter is still one collection's.
        assert docs.count({"fresh": True}) == plain.count({"fresh": True}) == 10
        q = np.random.default_rng(5).standard_normal((3, 8)).astype(np.float32)
        for where in (None, {"g": 2}, {"$and": [{"tag": "a"}, {"n": {"$lt": 60}}]}):
            want, got = plain.search(q, k=7, where=where), docs.search(q, k=7, where=where)
            assert got.ids.tolist() == want.ids.tolist(), where
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
        assert _items(docs.get(["doc-3", "doc-77"])) == _items(plain.get(["doc-3", "doc-77"]))
        assert sorted(i.id for i in docs.get(where={"fresh": True})) == sorted(fresh)
        with pytest.raises(simsearch.ItemNotFoundError, match="doc-115"):
            docs.update(["doc-1", "doc-115"], metadata=[{"x": 1}, {"x": 2}])
        with pytest.raises(simsearch.InvalidFilterError, match="'nope'"):
            docs.count({"nope": 1})  # no item of any shard holds it
        with pytest.raises(simsearch.PermissionDeniedError):
            client.delete_collection("docs")
        with pytest.raises(simsearch.CollectionExistsError):
            client.create_collection("docs")
    with simsearch.ShardedCollection.open(tmp_path / "root") as col:  # the server closed it
        assert len(col) == 110
        assert col.get(["doc-1"])[0].metadata.get("x") is None  # the refused update wrote nothing
