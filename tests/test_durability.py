"""Crash safety (SIGKILL while writing) and several processes on one collection."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import simsearch
from crash_writer import BATCH, batch_sets, batch_vectors, index_of

HERE = Path(__file__).parent


def _child(path: Path, start: int, kind: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "crash_writer.py"), str(path), str(start), kind],
        stdout=subprocess.PIPE,
        text=True,
    )


# int8 and IVF-PQ repeat the flat and HNSW cases over another index: `make test-slow`.
@pytest.mark.parametrize(
    "kind",
    [
        "flat",
        "hnsw",
        pytest.param("int8", marks=pytest.mark.slow),
        pytest.param("ivfpq", marks=pytest.mark.slow),
        "fields",
    ],
)
def test_sigkill_never_loses_an_acknowledged_batch_nor_keeps_part_of_one(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "c"
    rng = np.random.default_rng(7)
    acked: set[int] = set()
    in_flight_committed: set[int] = set()  # batches whose add() committed just before a kill
    next_batch = 0
    for _ in range(20):
        # A random while, counting from its first acknowledged batch.
        _run_and_kill(path, next_batch, kind, rng, acked, set())

        with simsearch.Collection.open(path, index=index_of(kind)) as col:
            per_batch: dict[int, int] = defaultdict(int)
            stored: set[str] = set()
            for item in col.iter_items():
                per_batch[int(item.metadata["batch"])] += 1
                stored.add(item.id)
            # Writers of approximate kinds delete an item of every third batch once acknowledged.
            whole = {BATCH, BATCH - 1} if kind != "flat" else {BATCH}
            assert set(per_batch.values()) <= whole, "a batch was stored in part"
            assert acked <= set(per_batch), "an acknowledged batch was lost"
            # The batch in flight may or may not have committed; nothing else may exist.
            extra = set(per_batch) - acked - in_flight_committed
            assert extra <= {max(per_batch)}
            in_flight_committed |= extra
            # Vectors are intact, and search agrees with the store.
            for b in sorted(acked)[-2:]:
                items = col.get([f"b{b}-{i}" for i in range(BATCH - 1)])
                want = batch_vectors(b)[: BATCH - 1]
                np.testing.assert_array_equal(np.stack([i.vector for i in items]), want)
            # The index (a reloaded one plus catch-up, for approximate kinds) agrees with the store.
            top = col.search(batch_vectors(max(acked))[0], k=1)[0][0]
            assert top.id == f"b{max(acked)}-0"
            everything = col.search(np.zeros(16), k=len(stored) + 5)[0]
            assert {h.id for h in everything} == stored
            if kind == "fields":
                # The payload index (reloaded, or rebuilt after a kill mid-save) returns
                # exactly the acknowledged items.
                for b in sorted(per_batch)[-3:]:
                    where = {"batch": b}
                    assert col.explain(where=where)["filter"]["from"] == "payload index"
                    hits = col.search(np.zeros(16), k=BATCH + 5, where=where)[0]
                    assert {h.id for h in hits} == {i for i in stored if i.startswith(f"b{b}-")}
                low = col.explain(where={"batch": {"$lt": max(per_batch)}})["filter"]
                assert low["allowed"] == sum(n for b, n in per_batch.items() if b < max(per_batch))
            next_batch = max(per_batch) + 1
    if kind in ("int8", "ivfpq"):
        with simsearch.Collection.open(path) as col:
            col.search(np.zeros(16), k=1)
            # The kills landed on a trained, saved quantized index, not only its exact buffer.
            assert getattr(col._keeper.index, "built", False)


READER = """
import sys, time, simsearch, numpy as np
seen = 0
with simsearch.Collection.open(sys.argv[1]) as col:
    deadline = time.time() + 60
    while time.time() < deadline:
        n = len(col)
        assert n >= seen, (n, seen)
        seen = n
        res = col.search(np.ones(8, dtype=np.float32), k=5)
        # A write may land between len() and search(): the search sees at least n items.
        assert min(5, n) <= len(res[0]) <= 5
        assert len({h.id for h in res[0]}) == len(res[0])
        if n >= int(sys.argv[2]):
            break
print(seen)
"""

WRITER = """
import sys, numpy as np, simsearch
name, batches = sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(abs(hash(name)) % 1000)
with simsearch.Collection.open(sys.argv[1]) as col:
    for b in range(batches):
        ids = [f"{name}-{b}-{i}" for i in range(20)]
        col.add(ids, vectors=rng.standard_normal((20, 8)), metadata=[{"w": name}] * 20)
"""


def _run(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_writer_and_a_reader_in_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="cosine", dim=8):
        pass
    reader = _run(READER, path, 60 * 20)
    writer = _run(WRITER, path, "w", 60)
    _out_w, err_w = writer.communicate(timeout=120)
    out_r, err_r = reader.communicate(timeout=120)
    assert writer.returncode == 0, err_w
    assert reader.returncode == 0, err_r
    assert int(out_r) == 60 * 20
    with simsearch.Collection.open(path) as col:
        assert len(col) == 1200


def test_two_writers_in_two_processes(tmp_path: Path) -> None:
    path = tmp_path / "c"
    with simsearch.Collection.open(path, metric="cosine", dim=8) as col:
        writers = [_run(WRITER, path, name, 40) for name in ("a", "b")]
        for w in writers:
            _, err = w.communicate(timeout=120)
            assert w.returncode == 0, err
        # This process's collection was open all along and sees both writers' work.
        assert len(col) == 2 * 40 * 20
        assert col.delete(where={"w": "a"}) == 800
        hits = col.search(np.ones(8), k=1000)[0]
        assert len(hits) == 800
        assert all(h.metadata["w"] == "b" for h in hits)
        assert len({h.id for h in hits}) == 800


def _run_and_kill(
    path: Path, start: int, kind: str, rng: np.random.Generator, acked: set[int], changed: set[int]
) -> None:
    """Run a writer from batch ``start``, kill it a random while after its first
    acknowledged batch, and note what it acknowledged: batches, and "changed" ones."""
    child = _child(path, start, kind)
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first, "the writer died before acknowledging anything"
    acked.add(int(first))
    time.sleep(float(rng.uniform(0.0, 0.4)))
    os.kill(child.pid, signal.SIGKILL)
    rest, _ = child.communicate()
    for line in rest.splitlines():
        if line.startswith("changed "):
            changed.add(int(line.split()[1]))
        elif line.strip():
            acked.add(int(line))
    child.wait()


def test_sigkill_keeps_the_lexical_index_exactly_the_acknowledged_texts(tmp_path: Path) -> None:
    """20 kills while texts are added, replaced and deleted: after each reopen a lexical
    search finds every stored text by its own word and finds nothing else (the lexical
    index saved at the last close, caught up with what the killed writer committed)."""
    from crash_writer import text_of

    path = tmp_path / "c"
    rng = np.random.default_rng(11)
    acked: set[int] = set()
    changed: set[int] = set()
    next_batch = 0
    for _ in range(20):
        _run_and_kill(path, next_batch, "texts", rng, acked, changed)
        with simsearch.Collection.open(path) as col:
            stored = {item.id: item.text for item in col.iter_items()}
            batches = {int(item.metadata["batch"]) for item in col.iter_items()}
            texts = {i: t for i, t in stored.items() if t is not None}
            found = col.search("common", mode="lexical", k=len(stored) + 5)[0]
            assert {h.id for h in found} == set(texts), "the lexical index and the store differ"
            for b in sorted(acked)[-3:]:
                for i in (0, 1, 2):
                    item = f"b{b}-{i}"
                    version = 1 if b in changed and i == 0 else 0
                    hits = col.search(text_of(b, i, version).split()[0], mode="lexical", k=3)[0]
                    if item in texts and texts[item] == text_of(b, i, version):
                        assert [h.id for h in hits] == [item]
                    if b in changed and i == 1:  # deleted, acknowledged: gone from both
                        assert item not in stored
                        assert hits == []
                    if b in changed and i == 0:  # replaced: the old text is no longer found
                        old = col.search(text_of(b, 0, 0).split()[0], mode="lexical")[0]
                        assert old == []
        next_batch = max(batches) + 1


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_sigkill_keeps_multivector_items_whole(tmp_path: Path) -> None:
    """10 kills while sets are added, replaced and deleted: after each reopen every
    acknowledged batch is whole, each stored item holds exactly its set (the token
    vectors committed with the item, never apart), and search finds them."""
    import sqlite3

    path = tmp_path / "c"
    rng = np.random.default_rng(13)
    acked: set[int] = set()
    changed: set[int] = set()
    next_batch = 0
    for _ in range(10):
        _run_and_kill(path, next_batch, "sets", rng, acked, changed)
        with simsearch.Collection.open(path) as col:
            items = col.get(include=["metadata", "multivector"])
            per_batch: dict[int, int] = defaultdict(int)
            for item in items:
                b, i = (int(x) for x in item.id[1:].split("-"))
                per_batch[b] += 1
                assert item.multivector is not None
                old, new = _unit(batch_sets(b)[i]), _unit(-batch_sets(b)[i])
                if i == 0 and b in changed:
                    np.testing.assert_allclose(item.multivector, new, atol=2e-3)
                elif i == 0:  # replaced just before a kill, or not yet
                    assert np.allclose(item.multivector, old, atol=2e-3) or np.allclose(
                        item.multivector, new, atol=2e-3
                    )
                else:
                    np.testing.assert_allclose(item.multivector, old, atol=2e-3)
                assert not (i == 1 and b in changed), "an acknowledged delete came back"
            assert acked <= set(per_batch), "an acknowledged batch was lost"
            assert set(per_batch.values()) <= {BATCH, BATCH - 1}, "a batch was stored in part"
            db = sqlite3.connect(path / "simsearch.sqlite3")
            try:
                tokens = db.execute("SELECT count(*) FROM tokens").fetchone()[0]
            finally:
                db.close()
            assert tokens == len(items), "token vectors and items differ"
            last = max(acked)
            top = col.search(batch_sets(last)[5], k=1, exact=True)[0][0]
            assert top.id == f"b{last}-5"
            everything = col.search(np.ones((1, 16)), k=len(items) + 5, candidates=10_000)[0]
            assert {h.id for h in everything} == {i.id for i in items}
        next_batch = max(per_batch) + 1
