"""The HNSW index kind: persistence with catch-up, compaction, filtered walks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import simsearch
from simsearch.index.hnsw import META_FILE, HNSWIndex
from simsearch.search.plan import plan_search
from simsearch.store import Changes

GRAPH = simsearch.HNSW(m=16, ef_construction=100, ef_search=100, exact_below=0)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((3000, 16)).astype(np.float32), rng.standard_normal((50, 16)).astype(
        np.float32
    )


def overlap(got: simsearch.Results, want: simsearch.Results) -> float:
    """Mean share of each query's true hits that were found (padding ignored)."""
    shares = []
    for g, w in zip(got.ids.tolist(), want.ids.tolist(), strict=True):
        truth = {i for i in w if i is not None}
        shares.append(len(truth & set(g)) / max(len(truth), 1))
    return float(np.mean(shares))


def test_graph_recall_and_exact_switch(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    x, q = data
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        exact = col.search(q, k=10, exact=True)
        assert overlap(col.search(q, k=10), exact) >= 0.95
        assert overlap(col.search(q, k=10, ef=400), exact) >= overlap(
            col.search(q, k=10, ef=10), exact
        )
        assert col.info()["index"] == "hnsw"


def test_saved_graph_is_reloaded_and_caught_up(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = data
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="l2", index=GRAPH) as col:
        col.add([str(i) for i in range(2000)], vectors=x[:2000])
        before = col.search(q, k=10)
        saved_seq = col.info()["seq"]
    assert (path / "index" / META_FILE).exists()
    # Another handle writes after the graph was saved; the next opener catches up.
    with simsearch.Collection.open(path, index=simsearch.Flat()) as other:
        pass  # switching kinds is allowed (the index is derived) ...
    with simsearch.Collection.open(path, index=GRAPH) as col:  # ... and back again
        assert col._keeper.applied_seq == saved_seq  # loaded, not rebuilt
        assert col.search(q, k=10).ids.tolist() == before.ids.tolist()
        with simsearch.Collection.open(path) as writer:
            writer.add([str(i) for i in range(2000, 3000)], vectors=x[2000:])
            writer.delete(["0", "1"])
        hits = col.search(x[2500], k=1)[0]
        assert hits[0].id == "2500"
        assert "0" not in {h.id for row in col.search(q, k=50) for h in row}
    del other


def test_unreadable_graph_files_are_rebuilt_from_the_store(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = data
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="dot", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        exact = col.search(q, k=10, exact=True)
    (path / "index" / "hnsw.bin").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="rebuilt from the store"):
        col = simsearch.Collection.open(path)
    with col:
        assert overlap(col.search(q, k=10), exact) >= 0.95
        assert len(col) == len(x)


def test_deletes_are_compacted_and_never_return(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, q = data
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        col.search(q[:1], k=1)
        col.delete([str(i) for i in range(0, len(x), 2)])
        results = col.search(q, k=20)
        assert all(int(h.id) % 2 == 1 for row in results for h in row)
        col._keeper.wait_for_rebuild()  # half the graph deleted: it is rebuilt without them
        index = col._keeper.index
        assert isinstance(index, HNSWIndex)
        assert index.dead == 0
        assert len(index) == len(x) // 2
        col.delete(["1", "3"])
        col.search(q[:1], k=1)  # the index catches up at the next search
        assert index.dead == 2
        col.optimize()
        assert col._keeper.index.dead == 0  # type: ignore[union-attr]


def test_searches_and_writes_go_on_while_the_graph_is_compacted(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    x = rng.standard_normal((20_000, 32)).astype(np.float32)
    q = rng.standard_normal((20, 32)).astype(np.float32)
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        col.search(q[:1], k=1)
        col.delete([str(i) for i in range(0, len(x), 2)])
        col.search(q[:1], k=1)  # catching up starts the compaction in the background
        thread = col._keeper.rebuild
        assert thread is not None
        assert thread.is_alive()
        old = col._keeper.index
        # Meanwhile: more deletes and new items, and searches that see them at once.
        col.delete(["1", "3"])
        col.add(["new"], vectors=q[:1])
        while thread.is_alive():
            hits = col.search(q[:1], k=5)[0]
            assert hits[0].id == "new"
            assert all(h.id in {"new"} or int(h.id) % 2 == 1 for h in hits)
            assert not {"1", "3"} & {h.id for h in hits}
        thread.join()
        fresh = col.search(q, k=10)
        assert col._keeper.index is not old
        assert col._keeper.index.dead == 2  # only the deletes made after the copy are marks
        assert len(col._keeper.index) == len(x) // 2 - 2 + 1  # type: ignore[arg-type]
        assert fresh[0][0].id == "new"
        assert overlap(fresh, col.search(q, k=10, exact=True)) >= 0.95
        ids = {h.id for row in col.search(q, k=50) for h in row}
        assert not {"1", "3"} & ids
        assert all(i == "new" or int(i) % 2 == 1 for i in ids)


def test_a_failed_background_rebuild_warns_once_and_search_goes_on(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, q = data
    calls = []
    go = threading.Event()

    def broken(*args: object) -> HNSWIndex:
        calls.append(1)
        go.wait(30)
        raise MemoryError("no room for a second graph")

    def fail_and_wait() -> None:
        go.set()
        col._keeper.wait_for_rebuild()

    monkeypatch.setattr(HNSWIndex, "built_from", broken)
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        col.search(q[:1], k=1)
        col.delete([str(i) for i in range(0, len(x), 2)])
        col.search(q[:1], k=1)  # starts the rebuild in the background
        with pytest.warns(RuntimeWarning, match="rebuilding the index"):
            fail_and_wait()
        for _ in range(3):
            hits = col.search(q, k=10)
            assert all(int(h.id) % 2 == 1 for row in hits for h in row)
        col._keeper.wait_for_rebuild()
        assert len(calls) == 1  # not retried on every search
        col.optimize()  # rebuilds in place, in this thread
        assert col._keeper.index.dead == 0  # type: ignore[union-attr]


def test_searches_during_a_rebuild_copy_nothing(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    x, q = data
    go = threading.Event()
    copies = []
    build, copy = HNSWIndex.built_from, HNSWIndex.live_copy

    def slow_build(*args: Any) -> HNSWIndex:
        go.wait(30)
        return build(*args)

    def counted_copy(self: HNSWIndex) -> Any:
        copies.append(1)
        return copy(self)

    monkeypatch.setattr(HNSWIndex, "built_from", slow_build)
    monkeypatch.setattr(HNSWIndex, "live_copy", counted_copy)
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
        col.search(q[:1], k=1)
        col.delete([str(i) for i in range(0, len(x), 2)])
        for _ in range(5):  # every search catches up while the first rebuild waits
            col.search(q[:1], k=1)
        go.set()
        col._keeper.wait_for_rebuild()
        assert len(copies) == 1


def test_closing_during_a_compaction_drops_it(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.standard_normal((20_000, 32)).astype(np.float32)
    path = tmp_path / "c"
    col = simsearch.Collection.open(path, metric="cosine", index=GRAPH)
    col.add([str(i) for i in range(len(x))], vectors=x)
    col.search(x[:1], k=1)
    col.delete([str(i) for i in range(0, len(x), 2)])
    col.search(x[:1], k=1)
    thread = col._keeper.rebuild
    assert thread is not None
    col.close()
    thread.join()
    assert col._keeper.index is None
    with simsearch.Collection.open(path) as again:
        assert len(again) == len(x) // 2
        assert all(int(h.id) % 2 == 1 for h in again.search(x[1:2], k=10)[0])


@pytest.mark.parametrize(
    ("share", "k"), [(1.0, 10), (0.5, 10), (0.5, 300), (0.2, 100), (0.05, 10), (0.001, 10)]
)
def test_filters_keep_recall_and_k_hits(
    tmp_path: Path,
    data: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    share: float,
    k: int,
) -> None:
    x, q = data
    label = rng.integers(0, 1000, len(x))
    cut = max(1, int(1000 * share))
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x, metadata=[{"l": int(v)} for v in label])
        where = {"l": {"$lt": cut}}
        got = col.search(q, k=k, where=where)
        want = col.search(q, k=k, where=where, exact=True)
        matching = int((label < cut).sum())
        assert all(len(row) == min(k, matching) for row in got)
        assert overlap(got, want) >= 0.95
        assert all(int(label[int(h.id)]) < cut for row in got for h in row)


def test_a_filter_excluding_the_querys_neighbourhood_still_finds_the_nearest_allowed(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    # Half the items pass, but none near the queries: the walk's nearest rows are all
    # excluded, so these queries take the walk with the filter inside.
    x, _ = data
    q = (0.1 * rng.standard_normal((20, 16))).astype(np.float32)
    q[:, 0] = 5.0
    side = x[:, 0] < 0
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x, metadata=[{"s": bool(v)} for v in side])
        where = {"s": True}
        got = col.search(q, k=10, where=where)
        want = col.search(q, k=10, where=where, exact=True)
        assert all(len(row) == 10 for row in got)
        assert all(side[int(h.id)] for row in got for h in row)
        assert overlap(got, want) >= 0.95


def test_a_filtered_walk_of_one_query_answers_as_its_row_of_a_batch(
    data: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    # One query takes its own path through the filtered walk; a batch the general one.
    # Half the queries sit where the filter excludes everything near, so both paths' second
    # walk (the filter inside) is taken too.
    x, q = data
    q = q.copy()
    q[::2, 0] = 5.0
    index = HNSWIndex(simsearch.Metric.COSINE, 16, GRAPH)
    index.reserve(len(x))
    rows = np.arange(len(x), dtype=np.int64)
    index.apply(Changes(seq=1, rows=rows, vectors=x, deleted=np.empty(0, dtype=np.int64)))
    for allowed in (np.flatnonzero(x[:, 0] < 0), np.flatnonzero(rng.random(len(x)) < 0.1)):
        batch_scores, batch_rows = index.search(q, 10, allowed)
        for i in range(len(q)):
            scores, got = index.search(q[i : i + 1], 10, allowed)
            assert got.tolist() == batch_rows[i : i + 1].tolist()
            np.testing.assert_array_equal(scores, batch_scores[i : i + 1])
        assert set(batch_rows.ravel().tolist()) <= set(allowed.tolist())


def test_a_beam_as_wide_as_the_collection_finds_every_item_among_equal_vectors(
    tmp_path: Path,
) -> None:
    # Many equal vectors prune each other's links, so no edge may lead to a later item;
    # a beam that covers the whole collection scans it instead of walking.
    small = simsearch.HNSW(m=4, ef_construction=32, ef_search=64, exact_below=0)
    zero = [0.0] * 4
    with simsearch.Collection.open(tmp_path / "c", metric="l2", index=small) as col:
        for ids, vectors in [
            (["z0", "z1", "z2", "z5"], [zero] * 4),
            (["z3", "z4"], [zero] * 2),
            (["z0", "z1", "z7", "z8"], [zero] * 4),
            (["far", "z0"], [[0, 2, 0, 0], zero]),
            (["z0"], [[0, 1, 0, 0]]),
        ]:
            col.upsert(ids, vectors=vectors)
            col.search(zero, k=1)  # the graph catches up batch by batch
        hits = col.search([0.0, 2.0, 0.0, 0.0], k=2)[0]
        assert [(h.id, h.score) for h in hits] == [("far", 0.0), ("z0", -1.0)]


def test_planner_choices() -> None:
    assert plan_search(simsearch.Flat(), live=10**7, allowed=None).exact
    hnsw = simsearch.HNSW()
    assert plan_search(hnsw, live=5000, allowed=None).exact  # small: exact is cheap
    assert not plan_search(hnsw, live=10**6, allowed=None).exact
    assert plan_search(hnsw, live=10**6, allowed=50_000).exact  # a selective filter
    assert not plan_search(hnsw, live=10**6, allowed=500_000).exact  # filter inside the graph
    assert plan_search(hnsw, live=10**6, allowed=None, force_exact=True).exact
    # With the dimension, the cost model decides: scoring the allowed rows or walking.
    assert plan_search(hnsw, live=10**6, allowed=60_000, dim=50, ef=128).exact
    walked = plan_search(hnsw, live=10**6, allowed=240_000, dim=50, ef=128)
    assert not walked.exact
    assert "more than the walk" in walked.reason
    # Rows too many to keep a flat copy of (a quarter of the vectors) are walked.
    too_many = plan_search(hnsw, live=10**6, allowed=260_000, dim=768, ef=4096)
    assert not too_many.exact
    assert "too many to copy" in too_many.reason


def test_bad_index_options() -> None:
    with pytest.raises(simsearch.InvalidArgumentError, match="m must be"):
        simsearch.HNSW(m=1)
    with pytest.raises(simsearch.InvalidArgumentError, match="ef_search"):
        simsearch.HNSW(ef_search=0)
    with pytest.raises(TypeError):
        simsearch.HNSW(16)  # type: ignore[misc]  # keyword-only
    with pytest.raises(simsearch.InvalidArgumentError, match="index must be"):
        simsearch.Collection.open("/tmp/never-created-simsearch", index="hnsw")  # type: ignore[arg-type]


def test_two_processes_saving_the_graph_at_once_leave_a_loadable_one(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "c"
    x = np.random.default_rng(9).standard_normal((3000, 8)).astype(np.float32)
    with simsearch.Collection.open(path, metric="l2", index=GRAPH) as col:
        col.add([str(i) for i in range(len(x))], vectors=x)
    code = (
        "import sys, numpy as np, simsearch\n"
        "col = simsearch.Collection.open(sys.argv[1])\n"
        "for i in range(15):\n"
        "    col.upsert([f'p{sys.argv[2]}-{i}'], vectors=[np.full(8, float(i))])\n"
        "    col.optimize()\n"
        "col.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(n)]) for n in range(2)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "c"]
    assert leftovers == []
    with simsearch.Collection.open(path) as col:
        assert len(col) == len(x) + 30
        assert col.search(x[7], k=1)[0][0].id == "7"
        assert {h.id for h in col.search(np.full(8, 14.0), k=2)[0]} == {"p0-14", "p1-14"}
