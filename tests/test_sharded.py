"""A 3-shard collection on a local 3-node Ray cluster answers as one collection holding
the same items: every index kind, filters, paging, batches; and its own rules (ties,
the manifest, writes that touch several shards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from ray_cluster import local_cluster

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
