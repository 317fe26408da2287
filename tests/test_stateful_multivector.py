"""Multi-vector collections driven by Hypothesis against exact MaxSim in numpy.

Add, upsert, delete (by id and by filter), reopen and filtered searches. Small integer
vectors with metric ``dot`` keep every MaxSim exact in float16 storage and float32
arithmetic, so exact search (``exact=True``), and an FDE search whose candidates cover
every item, must equal the oracle id for id (ties by insertion order); an FDE search
with few candidates must return live, matching items with their exact MaxSim scores.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import simsearch
from oracle import close, matches, names_unknown_field
from test_stateful import IDS, META, WHERE

DIM = 4
TOKEN = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM)
SET = st.lists(TOKEN, min_size=1, max_size=5)


def maxsim(q: np.ndarray, p: np.ndarray) -> float:
    return float((q @ p.T).max(axis=1).sum())


class MultiVectorMachine(RuleBasedStateMachine):
    index: Any = simsearch.Flat()

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp()
        multi = simsearch.MultiVector(k_sim=2, d_proj=4, r_reps=3, storage="float16")
        self.col = simsearch.Collection.open(
            self.dir + "/c", metric="dot", dim=DIM, multivector=multi, index=self.index
        )
        self.items: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}

    def teardown(self) -> None:
        self.col.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def oracle(self, q: np.ndarray, k: int, where: Any) -> list[tuple[str, float]]:
        scored = [
            (i, maxsim(q, s))
            for i, (s, m) in self.items.items()
            if where is None or matches(m, where)
        ]
        order = sorted(range(len(scored)), key=lambda j: (-scored[j][1], j))[:k]
        return [scored[j] for j in order]

    def _write(self, data: st.DataObject, n: int, upsert: bool) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        sets = [
            np.array(s, dtype=np.float64) for s in data.draw(st.lists(SET, min_size=n, max_size=n))
        ]
        metas = data.draw(st.lists(META, min_size=n, max_size=n))
        if not upsert and any(i in self.items for i in ids):
            with pytest.raises(simsearch.DuplicateIdError):
                self.col.add(ids, multivectors=sets, metadata=metas)
            return
        write = self.col.upsert if upsert else self.col.add
        write(ids, multivectors=sets, metadata=metas)
        for i, s, m in zip(ids, sets, metas, strict=True):
            self.items[i] = (s, m)

    @rule(data=st.data(), n=st.integers(1, 4))
    def add(self, data: st.DataObject, n: int) -> None:
        self._write(data, n, upsert=False)

    @rule(data=st.data(), n=st.integers(1, 4))
    def upsert(self, data: st.DataObject, n: int) -> None:
        self._write(data, n, upsert=True)

    @rule(ids=st.lists(IDS, min_size=1, max_size=3, unique=True))
    def delete_ids(self, ids: list[str]) -> None:
        assert self.col.delete(ids) == sum(i in self.items for i in ids)
        for i in ids:
            self.items.pop(i, None)

    @rule(where=WHERE.filter(lambda w: w is not None))
    def delete_where(self, where: dict[str, Any]) -> None:
        if names_unknown_field([m for _, m in self.items.values()], where):
            with pytest.raises(simsearch.InvalidFilterError):
                self.col.delete(where=where)
            return
        doomed = [i for i, (_, m) in self.items.items() if matches(m, where)]
        assert self.col.delete(where=where) == len(doomed)
        for i in doomed:
            del self.items[i]

    @precondition(lambda self: bool(self.items))
    @rule(q=SET, k=st.integers(1, 8), where=WHERE, few=st.integers(1, 3))
    def search(self, q: list[list[int]], k: int, where: Any, few: int) -> None:
        query = np.array(q, dtype=np.float64)
        if names_unknown_field([m for _, m in self.items.values()], where):
            with pytest.raises(simsearch.InvalidFilterError):
                self.col.search(query, k=k, where=where)
            return
        want = self.oracle(query, k, where)
        for kwargs in ({"exact": True}, {"candidates": 1000}):
            got = self.col.search(query, k=k, where=where, **kwargs)[0]
            assert [h.id for h in got] == [i for i, _ in want], kwargs
            assert all(close(h.score, s) for h, (_, s) in zip(got, want, strict=True))
        # Few candidates: fewer may be right, but every hit is live, matches, and is
        # scored by its exact MaxSim, best first.
        got = self.col.search(query, k=k, where=where, candidates=few)[0]
        assert len(got) == min(k, len(want))
        assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
        for h in got:
            stored, meta = self.items[h.id]
            assert where is None or matches(meta, where)
            assert close(h.score, maxsim(query, stored))

    @precondition(lambda self: bool(self.items))
    @rule(qs=st.lists(SET, min_size=2, max_size=3), k=st.integers(1, 5))
    def batch_search(self, qs: list[list[list[int]]], k: int) -> None:
        queries = [np.array(q, dtype=np.float64) for q in qs]
        res = self.col.search(queries, k=k, exact=True)
        for q, row in zip(queries, res, strict=True):
            assert [h.id for h in row] == [i for i, _ in self.oracle(q, k, None)]

    @rule()
    def reopen(self) -> None:
        self.col.close()
        self.col = simsearch.Collection.open(self.dir + "/c")

    @invariant()
    def counts_agree(self) -> None:
        assert len(self.col) == len(self.items)

    @precondition(lambda self: bool(self.items))
    @invariant()
    def stored_sets_agree(self) -> None:
        some = sorted(self.items)[:3]
        for item in self.col.get(some, include=["multivector"]):
            np.testing.assert_array_equal(item.multivector, self.items[item.id][0])


class HNSWMultiVectorMachine(MultiVectorMachine):
    """The encodings in a graph walked even for tiny collections."""

    index = simsearch.HNSW(m=4, ef_construction=32, ef_search=64, exact_below=0)


_settings = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMultiVectorCollection = MultiVectorMachine.TestCase
TestMultiVectorCollection.settings = _settings
# The same machine over another index kind: run by `make test-slow` to keep `make test` short.
TestHNSWMultiVectorCollection = pytest.mark.slow(HNSWMultiVectorMachine.TestCase)
TestHNSWMultiVectorCollection.settings = _settings
