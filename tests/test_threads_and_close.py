"""Threads, snapshots and closing: what a review of the pipeline found, each kept fixed."""

from __future__ import annotations

import _thread
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import simsearch

GRAPH = simsearch.HNSW(m=8, ef_construction=40, exact_below=0)

CLOSE_DURING_SEARCHES = """
import sys, threading, numpy as np, simsearch
col = simsearch.Collection.open(sys.argv[1], metric="dot", dim=4)
col.add([str(i) for i in range(200)], vectors=np.random.default_rng(0).random((200, 4)))
errors = []
def searching():
    q = np.ones(4)
    while True:
        try:
            col.search(q, k=3)
        except simsearch.CollectionClosedError:
            return
        except BaseException as exc:
            errors.append(repr(exc))
            return
threads = [threading.Thread(target=searching) for _ in range(3)]
for t in threads:
    t.start()
import time; time.sleep(0.5)
col.close()
for t in threads:
    t.join(10)
print("errors", errors)
"""


def test_closing_while_threads_search_ends_them_with_the_closed_error(tmp_path: Path) -> None:
    for attempt in range(3):
        done = subprocess.run(
            [sys.executable, "-c", CLOSE_DURING_SEARCHES, str(tmp_path / f"c{attempt}")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]  # no segmentation fault
        assert "errors []" in done.stdout, done.stdout


def test_closing_with_an_iteration_still_open_returns_at_once(tmp_path: Path) -> None:
    col = simsearch.Collection.open(tmp_path / "c", metric="dot", dim=2)
    col.add(["a", "b", "c"], vectors=[[1, 0], [0, 1], [1, 1]])
    items = col.iter_items(batch=1)
    assert next(items).id == "a"
    start = time.monotonic()
    col.close()
    assert time.monotonic() - start < 5
    with pytest.raises(simsearch.CollectionClosedError):
        list(items)


def test_a_search_inside_an_iteration_leaves_its_view_alone(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot", dim=2) as col:
        col.add(["a", "b"], vectors=[[1, 0], [0, 1]])
        seen = []
        for item in col.iter_items(batch=1):
            seen.append(item.id)
            if item.id == "a":
                writer = threading.Thread(
                    target=col.add, args=(["z"],), kwargs={"vectors": [[2, 2]]}
                )
                writer.start()
                writer.join()
                # The search sees the new item; the iteration keeps the view it began with.
                assert col.search([1.0, 1.0], k=1)[0][0].id == "z"
        assert seen == ["a", "b"]


def test_a_rebuild_swapped_in_does_not_leave_a_stale_description(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="cosine", index=GRAPH) as col:
        x = np.random.default_rng(3).standard_normal((400, 8)).astype(np.float32)
        col.add([f"i{i}" for i in range(400)], vectors=x, metadata=[{"n": 0}] * 400)
        q = x[0]
        assert col.search(q, k=1)[0][0].id == "i0"  # i0 described and kept
        gate = threading.Event()
        original = simsearch.index.hnsw.HNSWIndex.built_from

        def slow(*args: object) -> object:
            gate.wait(30)
            return original(*args)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(simsearch.index.hnsw.HNSWIndex, "built_from", staticmethod(slow))
            col.delete([f"i{i}" for i in range(200, 400)])
            col.search(q, k=1)  # a quarter deleted: the rebuild starts, and waits
            col.upsert(["i0"], vectors=[x[0]], metadata=[{"n": "new"}])
            gate.set()
            col._keeper.wait_for_rebuild()
        col.search(x[1], k=1)  # the snapshot path: notes the current state
        hit = col.search(q, k=1)[0][0]  # the quick path
        assert (hit.id, hit.metadata) == ("i0", {"n": "new"})


def test_a_thread_not_started_by_threading_keeps_its_connection(tmp_path: Path) -> None:
    with simsearch.Collection.open(tmp_path / "c", metric="dot", dim=2) as col:
        col.add(["a"], vectors=[[1, 0]])
        inside, release, outcome = threading.Event(), threading.Event(), []

        def raw_thread() -> None:
            try:
                with col._store.snapshot() as snap:
                    inside.set()
                    release.wait(30)
                    outcome.append(snap.count())
            except BaseException as exc:
                outcome.append(exc)

        _thread.start_new_thread(raw_thread, ())
        assert inside.wait(30)
        other = threading.Thread(target=lambda: col.search([1.0, 0.0], k=1))
        other.start()  # a new reader of its own, while the raw thread's is in use
        other.join()
        release.set()
        for _ in range(300):
            if outcome:
                break
            time.sleep(0.01)
        assert outcome == [1]


def test_closing_a_collection_whose_config_was_damaged_still_closes(tmp_path: Path) -> None:
    col = simsearch.Collection.open(tmp_path / "c", metric="dot", dim=2)
    col.add(["a"], vectors=[[1, 0]])
    with sqlite3.connect(tmp_path / "c" / "simsearch.sqlite3") as conn:
        conn.execute("UPDATE meta SET value = 'not json' WHERE key = 'config'")
    col.close()
    with pytest.raises(simsearch.CollectionClosedError):
        len(col)
