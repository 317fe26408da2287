"""The stateful suite with partial updates, browsing, counts and search pages among the
writes, against the same brute-force oracle (on the flat and the graph index)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

import simsearch
from oracle import matches
from test_stateful import IDS, META, VECTOR, WHERE, CollectionMachine, HNSWMachine

PATCH = st.fixed_dictionaries(
    {},
    optional={
        "color": st.sampled_from(["red", "blue"]),
        "n": st.integers(0, 5),
        "flag": st.booleans(),
    },
)


class BrowseMixin:
    """Rules for update, get, count and paged search; the machine supplies col and oracle."""

    col: simsearch.Collection
    oracle: Any

    @rule(data=st.data(), n=st.integers(1, 3), merge=st.booleans(), move=st.booleans())
    def update(self, data: st.DataObject, n: int, merge: bool, move: bool) -> None:
        ids = data.draw(st.lists(IDS, min_size=n, max_size=n, unique=True))
        patches = data.draw(st.lists(PATCH if merge else META, min_size=n, max_size=n))
        vecs = data.draw(st.lists(VECTOR, min_size=n, max_size=n)) if move else None
        if any(i not in self.oracle.items for i in ids):
            with pytest.raises(simsearch.ItemNotFoundError):
                self.col.update(ids, metadata=patches, merge=merge, vectors=vecs)
            return
        assert self.col.update(ids, metadata=patches, merge=merge, vectors=vecs) == n
        for j, (i, patch) in enumerate(zip(ids, patches, strict=True)):
            vec, meta = self.oracle.items[i]
            new_vec = np.array(vecs[j]) if vecs is not None else vec
            self.oracle.items[i] = (new_vec, {**meta, **patch} if merge else patch)

    @rule(where=WHERE, limit=st.integers(0, 6), offset=st.integers(0, 8))
    def browse(self, where: dict[str, Any] | None, limit: int, offset: int) -> None:
        if self.oracle.refuses(where):
            with pytest.raises(simsearch.InvalidFilterError):
                self.col.count(where)
            return
        # The oracle keeps insertion order, as the store's rows do (an upsert keeps its row).
        want = [i for i, (_, m) in self.oracle.items.items() if where is None or matches(m, where)]
        assert self.col.count(where) == len(want)
        got = self.col.get(where=where, limit=limit, offset=offset)
        assert [i.id for i in got] == want[offset : offset + limit]
        for item in got:
            vec, meta = self.oracle.items[item.id]
            assert item.metadata == meta
            assert item.vector is not None
            assert item.vector.tolist() == [float(x) for x in vec]

    @rule(q=VECTOR, k=st.integers(1, 4), offset=st.integers(0, 6))
    def search_page(self, q: list[int], k: int, offset: int) -> None:
        if self.col.config.dim is None:
            return
        query = np.array(q, dtype=np.float32)
        page = self.col.search(query, k=k, offset=offset)[0]
        deeper = self.col.search(query, k=k + offset)[0]
        assert [h.score for h in page] == [h.score for h in deeper[offset:]]


class BrowseMachine(BrowseMixin, CollectionMachine):
    pass


class BrowseHNSWMachine(BrowseMixin, HNSWMachine):
    pass


_settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBrowseFlat = BrowseMachine.TestCase
TestBrowseFlat.settings = _settings
TestBrowseHNSW = BrowseHNSWMachine.TestCase
TestBrowseHNSW.settings = _settings
