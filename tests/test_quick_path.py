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
