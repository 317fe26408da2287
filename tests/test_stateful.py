"""Add/upsert/delete/search with filters, driven by Hypothesis against a brute-force oracle."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import simsearch
from oracle import Oracle, close
from simsearch.index import quantized

DIM = 4
IDS = st.sampled_from([f"id{i}" for i in range(24)] + ["ünï", "空"])
# Small integers keep every dot product and squared distance exact in float32, so the
# ranking (ties broken by insertion order) must equal the oracle's exactly.
VECTOR = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM)
META = st.fixed_dictionaries(
    {"color": st.sampled_from(["red", "green", "blue"]), "n": st.integers(0, 5)},
    optional={"flag": st.booleans(), "nested": st.fixed_dictionaries({"x": st.integers(0, 2)})},
)
WHERE = st.one_of(
    st.none(),
    st.builds(lambda c: {"color": c}, st.sampled_from(["red", "green", "blue"])),
    st.builds(lambda n: {"n": {"$gte": n}}, st.integers(0, 5)),
    st.builds(
        lambda n, c: {"$or": [{"n": {"$lt": n}}, {"color": {"$ne": c}}]},
        st.integers(0, 5),
        st.sampled_from(["red", "blue"]),
    ),
    st.builds(lambda f: {"flag": {"$exists": f}}, st.booleans()),
    st.builds(lambda x: {"nested.x": {"$in": [x, 7]}}, st.integers(0, 2)),
    st.builds(
        lambda c: {"$not": {"color": {"$in": c}}},
        st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, max_size=2),
    ),
)

#: Payload indexes the machines declare and drop: filters on them run from the columns.
INDEXED = st.sampled_from(
    [("color", "keyword"), ("n", "integer"), ("nested.x", "integer"), ("flag", "bool")]
)


class CollectionMachine(RuleBasedStateMachine):
    metric = "dot"
    index: simsearch.Flat | simsearch.HNSW | simsearch.IVFPQ = simsearch.Flat()

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        self.col = simsearch.Collection.open(self.dir + "/c", metric=self.metric, index=self.index)
        self.oracle = Oracle(self.metric)

    def check_row(self, got: list[simsearch.Hit], want: list[tuple[str, float]]) -> None:
        """Exact indexes must match the oracle id for id (ties by insertion order)."""
        assert [h.id for h in got] == [i for i, _ in want]
        assert all(close(h.score, s) for h, (_, s) in zip(got, want, strict=True))

    def teardown(self) -> None:
        self.col.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(data=st.data(), n=st.integers(1, 5))
    def add(self, data: st.DataObject, n: int) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        vecs = data.draw(st.lists(VECTOR, min_size=n, max_size=n))
        metas = data.draw(st.lists(META, min_size=n, max_size=n))
        if any(i in self.oracle.items for i in ids):
            with pytest.raises(simsearch.DuplicateIdError):
                self.col.add(ids, vectors=vecs, metadata=metas)
            return
        self.col.add(ids, vectors=vecs, metadata=metas)
        for i, v, m in zip(ids, vecs, metas, strict=True):
            self.oracle.items[i] = (np.array(v), m)

    @rule(data=st.data(), n=st.integers(1, 5))
    def upsert(self, data: st.DataObject, n: int) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        vecs = data.draw(st.lists(VECTOR, min_size=n, max_size=n))
        metas = data.draw(st.lists(META, min_size=n, max_size=n))
        self.col.upsert(ids, vectors=vecs, metadata=metas)
        for i, v, m in zip(ids, vecs, metas, strict=True):
            self.oracle.items[i] = (np.array(v), m)

    @rule(ids=st.lists(IDS, min_size=1, max_size=4, unique=True))
    def delete_ids(self, ids: list[str]) -> None:
        expected = sum(i in self.oracle.items for i in ids)
        assert self.col.delete(ids) == expected
        for i in ids:
            self.oracle.items.pop(i, None)

    @rule(where=WHERE.filter(lambda w: w is not None))
    def delete_where(self, where: dict[str, Any]) -> None:
        from oracle import matches

        if self.oracle.refuses(where):
            with pytest.raises(simsearch.InvalidFilterError, match="no item has a field"):
                self.col.delete(where=where)
            return
        doomed = [i for i, (_, m) in self.oracle.items.items() if matches(m, where)]
        assert self.col.delete(where=where) == len(doomed)
        for i in doomed:
            del self.oracle.items[i]

    @rule(q=VECTOR, k=st.integers(1, 12), where=WHERE)
    def search(self, q: list[int], k: int, where: dict[str, Any] | None) -> None:
        if self.col.config.dim is None:
            return
        if self.oracle.refuses(where):
            with pytest.raises(simsearch.InvalidFilterError, match="no item has a field"):
                self.col.search(np.array(q, dtype=np.float32), k=k, where=where)
            return
        got = self.col.search(np.array(q, dtype=np.float32), k=k, where=where)[0]
        want = self.oracle.search(np.array(q), k, where)
        assert len({h.id for h in got}) == len(got)
        self.check_row(got, want)

    @precondition(lambda self: self.col.config.dim is not None)
    @rule(qs=st.lists(VECTOR, min_size=2, max_size=4), k=st.integers(1, 6))
    def batch_search(self, qs: list[list[int]], k: int) -> None:
        res = self.col.search(np.array(qs, dtype=np.float32), k=k)
        assert len(res) == len(qs)
        for q, row in zip(qs, res, strict=True):
            self.check_row(row, self.oracle.search(np.array(q), k, None))

    @initialize(fields=st.lists(INDEXED, unique=True))
    def index_fields_first(self, fields: list[tuple[str, str]]) -> None:
        for field in fields:  # declared before any data exists
            self.col.index_field(*field)

    @rule(field=INDEXED)
    def index_field(self, field: tuple[str, str]) -> None:
        # Before or after data exists; every later write must keep it current.
        self.col.index_field(*field)

    @rule(field=INDEXED)
    def drop_field_index(self, field: tuple[str, str]) -> None:
        self.col.drop_field_index(field[0])

    @rule()
    def reopen(self) -> None:
        self.col.close()
        self.col = simsearch.Collection.open(self.dir + "/c")

    @invariant()
    def counts_agree(self) -> None:
        assert len(self.col) == len(self.oracle.items)


class L2Machine(CollectionMachine):
    metric = "l2"


class HNSWMachine(CollectionMachine):
    """The graph index, forced on even for tiny collections, with deletes and compaction
    (a collection no larger than the beam is scanned, so every row must be exact).

    A graph returns equal scores in any order, so a row must hold the oracle's
    scores, and every id must be a live item with exactly that score: a deleted
    id never comes back.
    """

    metric = "l2"
    index = simsearch.HNSW(m=4, ef_construction=32, ef_search=64, exact_below=0)

    def check_row(self, got: list[simsearch.Hit], want: list[tuple[str, float]]) -> None:
        assert len(got) == len(want)
        assert all(close(h.score, s) for h, (_, s) in zip(got, want, strict=True))
        for hit in got:
            assert hit.id in self.oracle.items, f"{hit.id} was deleted but came back"
            vec, _ = self.oracle.items[hit.id]
            assert close(hit.score, self.exact_score(vec))

    def exact_score(self, vec: np.ndarray) -> float:
        return -float(np.linalg.norm(vec - self.last_query))

    @rule(q=VECTOR, k=st.integers(1, 12), where=WHERE)
    def search(self, q: list[int], k: int, where: dict[str, Any] | None) -> None:
        self.last_query = np.array(q, dtype=np.float64)
        super().search(q, k, where)

    @precondition(lambda self: self.col.config.dim is not None)
    @rule(qs=st.lists(VECTOR, min_size=2, max_size=4), k=st.integers(1, 6))
    def batch_search(self, qs: list[list[int]], k: int) -> None:
        res = self.col.search(np.array(qs, dtype=np.float32), k=k)
        for q, row in zip(qs, res, strict=True):
            self.last_query = np.array(q, dtype=np.float64)
            self.check_row(row, self.oracle.search(np.array(q), k, None))

    @rule()
    def optimize(self) -> None:
        self.col.optimize()


class QuantizedMachine(HNSWMachine):
    """Quantized indexes, trained from the first few items (the minimum training sizes are
    lowered for these tiny collections) and asked for enough candidates to cover them all,
    so the exact rescoring must reproduce the oracle's scores; compaction and retraining
    rebuild them from the store."""

    def __init__(self) -> None:
        self._saved = (quantized.MIN_TRAIN_GRAPH, quantized.POINTS_PER_CENTROID)
        quantized.MIN_TRAIN_GRAPH, quantized.POINTS_PER_CENTROID = 4, 1
        super().__init__()

    def teardown(self) -> None:
        super().teardown()
        quantized.MIN_TRAIN_GRAPH, quantized.POINTS_PER_CENTROID = self._saved


class Int8Machine(QuantizedMachine):
    index = simsearch.HNSW(
        m=4, ef_construction=32, exact_below=0, quantization="int8", rescore=1000
    )


class BinaryMachine(QuantizedMachine):
    metric = "dot"
    index = simsearch.HNSW(
        m=4, ef_construction=32, exact_below=0, quantization="binary", rescore=1000
    )

    def exact_score(self, vec: np.ndarray) -> float:
        return float(vec @ self.last_query)


class IVFPQMachine(QuantizedMachine):
    index = simsearch.IVFPQ(nbits=4, nprobe=1 << 20, exact_below=0, rescore=1000)


_settings = settings(
    max_examples=100,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDotCollection = CollectionMachine.TestCase
TestDotCollection.settings = _settings
# The same machine over another index kind: run by `make test-slow` to keep `make test` short.
TestL2Collection = pytest.mark.slow(L2Machine.TestCase)
TestL2Collection.settings = _settings
TestHNSWCollection = HNSWMachine.TestCase
TestHNSWCollection.settings = _settings
# The same machine over another index kind: run by `make test-slow` to keep `make test` short.
TestInt8Collection = pytest.mark.slow(Int8Machine.TestCase)
TestInt8Collection.settings = _settings
# The same machine over another index kind: run by `make test-slow` to keep `make test` short.
TestBinaryCollection = pytest.mark.slow(BinaryMachine.TestCase)
TestBinaryCollection.settings = _settings
TestIVFPQCollection = IVFPQMachine.TestCase
TestIVFPQCollection.settings = _settings
