"""The one-query-per-call path that reads nothing from the store when nothing changed: it
answers what the store holds, after writes in this process, in another, and under filters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import simsearch

GRAPH = simsearch.HNSW(m=8, ef_construction=40, exact_below=0)


@pytest.fixture(params=["flat", "hnsw"])
def col(request: pytest.FixtureRequest, tmp_path: Path) -> simsearch.Collection:
    index = simsearch.Flat() if request.param == "flat" else GRAPH
    c = simsearch.Collection.open(tmp_path / "c", metric="dot", index=index)
    c.add(["a", "b", "c"], vectors=np.eye(3), metadata=[{"v": 1}, {"v": 1}, {"v": 2}])
    return c


def test_a_cached_hit_follows_an_upsert_it_was_not_part_of(col: simsearch.Collection) -> None:
    assert col.search([1.0, 0, 0], k=1)[0][0].metadata == {"v": 1}  # 'a' described, kept
    col.upsert(["a"], vectors=[[1.0, 0, 0]], metadata=[{"v": 9}])
    assert col.search([0, 0, 1.0], k=1)[0][0].id == "c"  # catches up; 'a' is not a hit
    hit = col.search([1.0, 0, 0], k=1)[0][0]  # the quick path, 'a' read from memory
    assert (hit.id, hit.metadata) == ("a", {"v": 9})


def test_deleted_items_never_come_back(col: simsearch.Collection) -> None:
    for _ in range(3):
        assert [h.id for h in col.search([1.0, 0.5, 0], k=3)[0]] == ["a", "b", "c"]
    col.delete(["a"])
    for _ in range(3):
        assert [h.id for h in col.search([1.0, 0.5, 0], k=3)[0]] == ["b", "c"]


def test_another_process_writes_are_seen(col: simsearch.Collection) -> None:
    assert col.search([0, 1.0, 0], k=1)[0][0].metadata == {"v": 1}
    script = (
        "import sys, simsearch\n"
        "with simsearch.Collection.open(sys.argv[1]) as c:\n"
        "    c.upsert(['b'], vectors=[[0, 1.0, 0]], metadata=[{'v': 7}])\n"
        "    c.add(['d'], vectors=[[0, 2.0, 0]])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(col.path)], check=True)
    hits = col.search([0, 1.0, 0], k=2)[0]
    assert [(h.id, h.metadata) for h in hits] == [("d", {}), ("b", {"v": 7})]


def test_filtered_quick_searches_follow_writes(col: simsearch.Collection) -> None:
    where = {"v": 1}
    for _ in range(3):
        assert {h.id for h in col.search([1.0, 1.0, 1.0], k=3, where=where)[0]} == {"a", "b"}
    col.upsert(["c"], vectors=[[0, 0, 1.0]], metadata=[{"v": 1}])
    for _ in range(3):
        assert {h.id for h in col.search([1.0, 1.0, 1.0], k=3, where=where)[0]} == {"a", "b", "c"}


def test_the_quick_path_reads_nothing_when_nothing_changed(
    col: simsearch.Collection, monkeypatch: pytest.MonkeyPatch
) -> None:
    col.search([1.0, 0, 0], k=2)
    col.search([1.0, 0, 0], k=2)
    reads: list[str] = []
    original = col._store.snapshot

    def counting() -> object:
        reads.append("snapshot")
        return original()

    monkeypatch.setattr(col._store, "snapshot", counting)
    hits = col.search([1.0, 0, 0], k=2)[0]
    assert [h.id for h in hits] == ["a", "b"]
    assert reads == []


@pytest.mark.parametrize("metric", ["dot", "cosine", "l2"])
def test_one_query_ranks_as_its_row_of_a_batch_and_the_oracle_do(
    metric: str, tmp_path: Path
) -> None:
    """The one-query path of exact search ranks as the batch path does and as a brute-force
    oracle does, ties by insertion order, deleted items left out."""
    rng = np.random.default_rng(7)
    vectors = rng.integers(-2, 3, (300, 3)).astype(np.float32)  # many exact ties
    vectors[np.abs(vectors).sum(axis=1) == 0] = 1.0
    ids = [f"i{n}" for n in range(300)]
    with simsearch.Collection.open(tmp_path / "c", metric=metric) as col:
        col.add(ids, vectors=vectors)
        gone = set(rng.choice(300, 60, replace=False).tolist())
        col.delete([ids[g] for g in gone])
        keep = np.array([n for n in range(300) if n not in gone])
        base = vectors[keep]
        for q in rng.integers(-2, 3, (20, 3)).astype(np.float32):
            q = q if np.abs(q).sum() else np.ones(3, dtype=np.float32)
            one = col.search(q, k=7)[0]
            batch = col.search(np.stack([q, -q]), k=7)[0]
            assert [(h.id, h.score) for h in one] == [(h.id, h.score) for h in batch]
            if metric == "l2":
                key = np.linalg.norm(base - q, axis=1)
            elif metric == "cosine":
                unit = base / np.linalg.norm(base, axis=1, keepdims=True)
                key = -(unit @ (q / np.linalg.norm(q)))
            else:
                key = -(base @ q)
            order = np.lexsort((keep, np.round(key, 5)))[:7]
            assert [h.id for h in one] == [ids[n] for n in keep[order]]


def test_a_kept_filter_is_the_one_its_value_compiles_to() -> None:
    """Compiled filters are kept by value: values that compile differently (1, 1.0, True;
    a dict changed after use) never share an entry."""
    from simsearch.filters import compile_filter
    from simsearch.search.request import compiled_filter

    where: dict[str, object] = {"n": 1}
    shapes = [where, {"n": True}, {"n": 1.0}, {"n": "1"}, {"n": [1]}, {"n": {"$in": [1, True]}}]
    shapes += [{"n": 0.0}, {"n": -0.0}]
    for _ in range(2):
        for w in shapes:
            try:
                expected = compile_filter(w)
            except simsearch.InvalidFilterError:
                with pytest.raises(simsearch.InvalidFilterError):
                    compiled_filter(w)
                continue
            kept = compiled_filter(w)
            assert (kept, kept.key) == (expected, expected.key)  # the key tells 1 from 1.0
    where["n"] = 2
    assert compiled_filter(where) == compile_filter({"n": 2})


def test_a_kept_filter_answers_as_a_fresh_one(col: simsearch.Collection) -> None:
    for _ in range(2):
        assert [h.id for h in col.search([1.0, 0.5, 0.2], k=3, where={"v": 1})[0]] == ["a", "b"]
        assert [h.id for h in col.search([1.0, 0.5, 0.2], k=3, where={"v": 2})[0]] == ["c"]
        assert col.search([1.0, 0.5, 0.2], k=3, where={"v": True})[0] == []


def test_a_kept_request_is_never_given_for_arguments_that_check_differently(
    col: simsearch.Collection,
) -> None:
    for _ in range(2):
        assert len(col.search([1.0, 0, 0], k=2)[0]) == 2
        for bad in (True, 2.0, "2", [2]):
            with pytest.raises(simsearch.InvalidArgumentError):
                col.search([1.0, 0, 0], k=bad)
        with pytest.raises(simsearch.InvalidArgumentError):
            col.search([1.0, 0, 0], k=2, exact=1)
        assert len(col.search([1.0, 0, 0], k=2, exact=True)[0]) == 2
        for odd in ({"offset": False}, {"ef": True}, {"ef": [64]}, {"mode": ["dense"]}):
            with pytest.raises(simsearch.InvalidArgumentError):
                col.search([1.0, 0, 0], k=2, **odd)
        assert len(col.search([1.0, 0, 0], k=2, ef=64)[0]) == 2


def test_row_norms_are_einsums_on_either_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-query path's row norms equal ``np.einsum`` bit for bit, through einsum's
    kernel or, where a numpy keeps it elsewhere, the public function."""
    import importlib

    from simsearch import vecmath

    x = np.random.default_rng(3).standard_normal((5, 37)).astype(np.float32)
    expected = np.einsum("ij,ij->i", x, x)
    assert np.array_equal(vecmath.row_sq_norms(x), expected)

    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert vecmath._kernel() is np.einsum
