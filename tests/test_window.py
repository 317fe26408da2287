"""Window filters: bucket graphs over a numeric field's value ranges (index/window.py).

The buckets are exact about membership (every live item whose value lies in a bucket's
range is in its graph, and no other), so the walk in a bucket finds what the whole
graph's filtered walk would; the planner picks a bucket only where its cost model says
it wins. Small buckets (``LEAF``) and a costly exact path are patched in so a small
collection takes the window path."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import simsearch
from simsearch.index import window as window_module
from simsearch.search import plan as plan_module

DIM = 16
N = 3000


@pytest.fixture(autouse=True)
def small_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_module, "LEAF", 64)
    monkeypatch.setattr(plan_module, "EXACT_US_PER_ROW_DIM", 1.0)  # exact never looks cheap


def _values(rng: np.random.Generator, n: int) -> list[dict]:
    out: list[dict] = []
    for i in range(n):
        r = rng.random()
        if i % 37 == 0:
            out.append({"tag": "no x"})
        elif i % 41 == 0:
            out.append({"x": "text, not a number"})
        elif i % 10 == 0:
            out.append({"x": int(r * 100) / 100})  # ties and integers among the floats
        else:
            out.append({"x": float(r)})
    return out


def _collection(path: Path, rng: np.random.Generator) -> tuple[simsearch.Collection, dict]:
    col = simsearch.Collection.open(
        path, metric="cosine", index=simsearch.HNSW(ef_search=64, exact_below=10)
    )
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    meta = _values(rng, N)
    col.add([str(i) for i in range(N)], vectors=vectors, metadata=meta)
    col.index_field("x", "float", window=True)
    state = {str(i): (vectors[i], meta[i]) for i in range(N)}
    return col, state


def _membership_holds(col: simsearch.Collection, state: dict) -> int:
    """Check every bucket holds exactly the live items whose x lies in its range."""
    windows = col._keeper.windows.indexes
    assert windows, "the window buckets were not built"
    row_of = _row_of(col)
    buckets = 0
    for index in windows.values():
        for bucket in index.buckets:
            expected = {
                row_of[i]
                for i, (_, m) in state.items()
                if isinstance(m.get("x"), (int, float)) and bucket.lo <= m["x"] <= bucket.hi
            }
            assert set(bucket.graph.live_rows().tolist()) == expected
            buckets += 1
    return buckets


def _row_of(col: simsearch.Collection) -> dict[str, int]:
    with col._store.snapshot() as snap:
        return dict(snap._conn.execute("SELECT id, row FROM items"))


def _oracle(state: dict, query: np.ndarray, lo: float, hi: float, k: int) -> list[str]:
    q = query / np.linalg.norm(query)
    scored = []
    for i, (v, m) in state.items():
        x = m.get("x")
        if isinstance(x, (int, float)) and lo <= x < hi:
            scored.append((-float(v @ q / np.linalg.norm(v)), i))
    return [i for _, i in sorted(scored)[:k]]


def _recall(col: simsearch.Collection, state: dict, rng: np.random.Generator) -> float:
    found = total = 0
    for lo, width in ((0.1, 0.3), (0.5, 0.1), (0.0, 0.6), (0.37, 0.05), (0.8, 0.12)):
        where = {"x": {"$gte": lo, "$lt": lo + width}}
        for _ in range(5):
            q = rng.standard_normal(DIM).astype(np.float32)
            hits = col.search(q, k=10, where=where)[0]
            for h in hits:
                assert lo <= h.metadata["x"] < lo + width
            truth = _oracle(state, q, lo, lo + width, 10)
            assert len(hits) == len(truth)
            found += len({h.id for h in hits} & set(truth))
            total += len(truth)
    return found / total


def test_a_mid_sized_window_walks_a_bucket_and_finds_the_exact_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    col, state = _collection(tmp_path / "c", rng)
    with col:
        plan = col.explain(where={"x": {"$gte": 0.1, "$lt": 0.2}})
        assert plan["plan"] == "window", plan
        assert "window graph" in plan["reason"]
        assert _recall(col, state, rng) >= 0.95
        assert _membership_holds(col, state) >= 3
        described = next(f for f in col.info()["field_indexes"] if f["field"] == "x")
        assert described["window"] is True
        assert described["window_bytes"] > 0


def test_buckets_follow_adds_value_changes_and_deletes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    col, state = _collection(tmp_path / "c", rng)
    with col:
        col.search(rng.standard_normal(DIM), k=5, where={"x": {"$gte": 0.2, "$lt": 0.5}})
        new = rng.standard_normal((300, DIM)).astype(np.float32)
        meta = _values(rng, 300)
        ids = [f"n{i}" for i in range(300)]
        col.add(ids, vectors=new, metadata=meta)
        state.update({i: (v, m) for i, v, m in zip(ids, new, meta, strict=True)})
        moved = [str(i) for i in range(0, 600, 3)]
        for i in moved:
            value = float(rng.random()) * 2 - 0.5  # some now outside every built range
            col.update(i, metadata={"x": value})
            state[i] = (state[i][0], {**state[i][1], "x": value})
        gone = [str(i) for i in range(1, 900, 4)]
        col.delete(gone)
        for i in gone:
            del state[i]
        col.update("6", metadata={"x": None}, merge=True)
        state["6"] = (state["6"][0], {**state["6"][1], "x": None})
        assert _recall(col, state, rng) >= 0.95
        _membership_holds(col, state)
        col.optimize()  # built again without the deleted marks
        _membership_holds(col, state)
        assert _recall(col, state, rng) >= 0.95


def test_reopened_collection_builds_its_buckets_again(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    col, state = _collection(tmp_path / "c", rng)
    col.close()
    with simsearch.Collection.open(tmp_path / "c") as col:
        assert not col._keeper.windows.indexes
        assert col.explain(where={"x": {"$gte": 0.1, "$lt": 0.2}})["plan"] == "window"
        assert _recall(col, state, rng) >= 0.95
        _membership_holds(col, state)


def test_filters_that_are_not_windows_take_the_usual_paths(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    col, _ = _collection(tmp_path / "c", rng)
    with col:
        for where in ({"$or": [{"x": {"$lt": 0.2}}, {"x": {"$gt": 0.8}}]}, {"tag": "no x"}):
            assert col.explain(where=where)["plan"] != "window"
        # A window combined with another condition still walks a bucket, filtered by both.
        where = {"x": {"$gte": 0.1, "$lt": 0.2}, "tag": {"$exists": False}}
        assert col.explain(where=where)["plan"] == "window"
        hits = col.search(rng.standard_normal(DIM), k=10, where=where)[0]
        assert len(hits) == 10
        assert all("tag" not in h.metadata for h in hits)


def test_window_bounds_of_filters() -> None:
    from simsearch.filters import compile_filter

    def bounds(where: dict) -> tuple[float, float] | None:
        return window_module.window_of(compile_filter(where).tree, ("x",))

    assert bounds({"x": {"$gt": 0.5}}) == (0.5, math.inf)
    assert bounds({"x": {"$lte": 3}}) == (-math.inf, 3.0)
    assert bounds({"$and": [{"x": {"$gt": 1}}, {"x": {"$lt": 5}}, {"x": {"$lt": 4}}]}) == (1, 4)
    assert bounds({"x": True}) is None
    assert bounds({"x": {"$gt": "a"}}) is None
    assert bounds({"y": {"$gt": 1}}) is None
    assert bounds({"$not": {"x": {"$gt": 1}}}) is None
